//! The [`Tensor`] type: construction, layout and indexing.

use ndarray::{ArcArray, ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn, Slice};

use crate::error::{Result, TensorError};
use crate::rng::Rng;

/// An f32 N-dimensional array with a runtime shape.
///
/// Storage is reference counted and copy-on-write: `clone` is O(1), and a
/// write to a shared tensor first copies it. Views made by [`Tensor::permute`],
/// [`Tensor::transpose`] and [`Tensor::narrow`] share storage and carry
/// strides; kernels read them in place (GEMM reads transposed operands without
/// a copy) and [`Tensor::contiguous`] makes a row-major copy only when needed.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) data: ArcArray<f32, IxDyn>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{:?} {:?}", self.shape(), self.data)
    }
}

impl PartialEq for Tensor {
    /// Equal shapes and bitwise-equal values in logical (row-major) order.
    fn eq(&self, other: &Self) -> bool {
        self.shape() == other.shape()
            && self.data.iter().zip(other.data.iter()).all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The most elements [`Tensor::try_zeros`], [`Tensor::try_full`] and
/// [`Tensor::try_from_fn`] will allocate: 2^31 f32 values (8 GiB). Shapes
/// that come from files or configurations are checked against it before
/// anything is allocated, so a hostile `[10^6, 10^6]` is an error, not an
/// abort. ([`Tensor::from_vec`] takes data already in memory and only checks
/// that the shape fits it.)
pub const MAX_ELEMENTS: usize = 1 << 31;

/// The number of elements of `shape`, with overflow checks: `None` when the
/// product overflows `usize`, or when the product of the non-zero
/// dimensions exceeds `isize::MAX` (ndarray's limit on any shape, even an
/// empty one).
///
/// ```
/// use nw_tensor::checked_numel;
/// assert_eq!(checked_numel(&[2, 3, 4]), Some(24));
/// assert_eq!(checked_numel(&[]), Some(1));
/// assert_eq!(checked_numel(&[usize::MAX, 2]), None);
/// assert_eq!(checked_numel(&[0, usize::MAX, 2]), None); // ndarray refuses the shape
/// ```
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    let mut nonzero: usize = 1;
    for &d in shape {
        if d != 0 {
            nonzero = nonzero.checked_mul(d)?;
        }
    }
    if nonzero > isize::MAX as usize {
        return None;
    }
    Some(if shape.contains(&0) { 0 } else { nonzero })
}

/// [`checked_numel`] and `<= limit`, as an error naming `op`.
pub(crate) fn numel_within(op: &'static str, shape: &[usize], limit: usize) -> Result<usize> {
    match checked_numel(shape) {
        Some(n) if n <= limit => Ok(n),
        Some(n) => Err(TensorError::InvalidShape {
            op,
            shape: shape.to_vec(),
            reason: format!("{n} elements exceed the limit of {limit}"),
        }),
        None => Err(TensorError::InvalidShape {
            op,
            shape: shape.to_vec(),
            reason: "the number of elements overflows".into(),
        }),
    }
}

/// A vector with room for `n` elements, or an error when the allocator
/// refuses (instead of aborting the process).
fn try_vec<T>(op: &'static str, shape: &[usize], n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|e| TensorError::InvalidShape {
        op,
        shape: shape.to_vec(),
        reason: format!("cannot allocate {n} elements: {e}"),
    })?;
    Ok(v)
}

impl Tensor {
    // ----- construction -------------------------------------------------

    /// Wraps an ndarray array.
    pub fn from_array(a: ArrayD<f32>) -> Self {
        Tensor { data: a.into_shared() }
    }

    /// A tensor of `shape` from row-major `data`.
    ///
    /// ```
    /// # use nw_tensor::Tensor;
    /// let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    /// assert_eq!(t.shape(), &[2, 3]);
    /// assert!(Tensor::from_vec(vec![1.0; 5], &[2, 3]).is_err());
    /// ```
    ///
    /// A shape whose element count overflows is an error, never a panic.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Result<Self> {
        let n = numel_within("from_vec", shape, usize::MAX)?;
        if data.len() != n {
            return Err(TensorError::InvalidShape {
                op: "from_vec",
                shape: shape.to_vec(),
                reason: format!("needs {n} elements, got {}", data.len()),
            });
        }
        let a = ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| TensorError::InvalidShape {
            op: "from_vec",
            shape: shape.to_vec(),
            reason: e.to_string(),
        })?;
        Ok(Self::from_array(a))
    }

    /// A tensor of `shape` filled with `v`, for shapes from files or
    /// configurations: more than [`MAX_ELEMENTS`] elements, an overflowing
    /// shape or a refused allocation is an error.
    ///
    /// ```
    /// # use nw_tensor::Tensor;
    /// assert_eq!(Tensor::try_full(&[2, 3], 1.5).unwrap().to_vec(), vec![1.5; 6]);
    /// assert!(Tensor::try_full(&[1_000_000, 1_000_000], 0.0).is_err());
    /// assert!(Tensor::try_full(&[usize::MAX, 3], 0.0).is_err());
    /// ```
    pub fn try_full(shape: &[usize], v: f32) -> Result<Self> {
        let n = numel_within("try_full", shape, MAX_ELEMENTS)?;
        let mut data = try_vec("try_full", shape, n)?;
        data.resize(n, v);
        Self::from_vec(data, shape)
    }

    /// Zeros of `shape`, checked as [`Tensor::try_full`].
    pub fn try_zeros(shape: &[usize]) -> Result<Self> {
        Self::try_full(shape, 0.0)
    }

    /// [`Tensor::from_fn`] for shapes from files or configurations, checked
    /// as [`Tensor::try_full`] before `f` is called.
    pub fn try_from_fn(shape: &[usize], mut f: impl FnMut() -> f32) -> Result<Self> {
        let n = numel_within("try_from_fn", shape, MAX_ELEMENTS)?;
        let mut data = try_vec("try_from_fn", shape, n)?;
        data.extend((0..n).map(|_| f()));
        Self::from_vec(data, shape)
    }

    /// A rank-0 tensor holding `v`.
    pub fn scalar(v: f32) -> Self {
        Self::full(&[], v)
    }

    /// A tensor of `shape` filled with `v`.
    pub fn full(shape: &[usize], v: f32) -> Self {
        Self::from_array(ArrayD::from_elem(IxDyn(shape), v))
    }

    /// Zeros of `shape`.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, 0.0)
    }

    /// Ones of `shape`.
    pub fn ones(shape: &[usize]) -> Self {
        Self::full(shape, 1.0)
    }

    /// Zeros with this tensor's shape.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.shape())
    }

    /// The 1-D tensor `start, start + step, ...` up to but excluding `end`.
    pub fn arange(start: f32, end: f32, step: f32) -> Result<Self> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(TensorError::InvalidArgument {
                op: "arange",
                reason: format!("start {start}, end {end}, step {step} do not define a range"),
            });
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f32> = (0..n).map(|i| start + step * i as f32).collect();
        Self::from_vec(v, &[n])
    }

    /// The `n x n` identity matrix.
    pub fn eye(n: usize) -> Self {
        Self::from_array(ArrayD::from_shape_fn(IxDyn(&[n, n]), |ix| if ix[0] == ix[1] { 1.0 } else { 0.0 }))
    }

    /// Builds a tensor of `shape` by calling `f` once per element in row-major order.
    pub fn from_fn(shape: &[usize], mut f: impl FnMut() -> f32) -> Self {
        let v: Vec<f32> = (0..numel(shape)).map(|_| f()).collect();
        Self::from_vec(v, shape).expect("length matches shape")
    }

    /// Uniform values in `[low, high)`, drawn in row-major order from `rng`.
    pub fn rand_uniform(shape: &[usize], low: f32, high: f32, rng: &mut Rng) -> Self {
        let (lo, hi) = (low as f64, high as f64);
        Self::from_fn(shape, || rng.uniform(lo, hi) as f32)
    }

    /// Normal values with the given mean and standard deviation.
    pub fn randn(shape: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Self {
        let (m, s) = (mean as f64, std as f64);
        Self::from_fn(shape, || (m + s * rng.normal()) as f32)
    }

    /// Normal values redrawn until they fall in `[low, high]`.
    pub fn trunc_normal(
        shape: &[usize],
        mean: f32,
        std: f32,
        low: f32,
        high: f32,
        rng: &mut Rng,
    ) -> Result<Self> {
        if low >= high || std.is_nan() || std < 0.0 {
            return Err(TensorError::InvalidArgument {
                op: "trunc_normal",
                reason: format!("needs low < high and std >= 0, got [{low}, {high}], std {std}"),
            });
        }
        let (m, s, a, b) = (mean as f64, std as f64, low as f64, high as f64);
        Ok(Self::from_fn(shape, || rng.truncated_normal(m, s, a, b) as f32))
    }

    /// Ones with probability `p`, zeros otherwise.
    pub fn bernoulli(shape: &[usize], p: f32, rng: &mut Rng) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(TensorError::InvalidArgument {
                op: "bernoulli",
                reason: format!("probability {p} is outside [0, 1]"),
            });
        }
        let p = p as f64;
        Ok(Self::from_fn(shape, || if rng.next_f64() < p { 1.0 } else { 0.0 }))
    }

    // ----- inspection ---------------------------------------------------

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.data.ndim()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Element strides (may be negative for reversed views).
    pub fn strides(&self) -> &[isize] {
        self.data.strides()
    }

    /// Whether the elements lie in row-major order without gaps.
    pub fn is_contiguous(&self) -> bool {
        self.data.is_standard_layout()
    }

    /// The elements as a row-major slice, if the tensor is contiguous.
    pub fn as_slice(&self) -> Option<&[f32]> {
        self.data.as_slice()
    }

    /// The elements as a mutable row-major slice, copying first if the
    /// storage is shared or not contiguous.
    pub fn as_slice_mut(&mut self) -> &mut [f32] {
        if !self.is_contiguous() {
            *self = self.contiguous();
        }
        self.data.as_slice_mut().expect("standard layout after contiguous()")
    }

    /// The elements in row-major order.
    pub fn to_vec(&self) -> Vec<f32> {
        match self.as_slice() {
            Some(s) => s.to_vec(),
            None => self.data.iter().copied().collect(),
        }
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.len() != 1 {
            return Err(TensorError::InvalidShape {
                op: "item",
                shape: self.shape().to_vec(),
                reason: "needs exactly one element".into(),
            });
        }
        Ok(*self.data.iter().next().expect("one element"))
    }

    /// The element at a full index.
    pub fn get(&self, index: &[usize]) -> Result<f32> {
        if index.len() != self.ndim() {
            return Err(TensorError::InvalidShape {
                op: "get",
                shape: self.shape().to_vec(),
                reason: format!("index {index:?} has the wrong rank"),
            });
        }
        self.data.get(IxDyn(index)).copied().ok_or_else(|| {
            let (d, &i) = index
                .iter()
                .enumerate()
                .find(|(d, i)| **i >= self.shape()[*d])
                .expect("some index is out of range");
            TensorError::IndexOutOfRange { op: "get", index: i as i64, size: self.shape()[d] }
        })
    }

    /// A read-only ndarray view.
    pub fn view(&self) -> ArrayViewD<'_, f32> {
        self.data.view()
    }

    /// A mutable ndarray view (copies first if the storage is shared).
    pub fn view_mut(&mut self) -> ArrayViewMutD<'_, f32> {
        self.data.view_mut()
    }

    /// The data as an owned ndarray array.
    pub fn into_array(self) -> ArrayD<f32> {
        self.data.into_owned()
    }

    /// Whether both tensors share the same storage buffer.
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        self.data.as_ptr() == other.data.as_ptr()
    }

    // ----- layout -------------------------------------------------------

    /// This tensor in row-major layout: a cheap clone when it already is,
    /// otherwise a copy.
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            self.clone()
        } else {
            Self::from_array(self.data.as_standard_layout().into_owned())
        }
    }

    /// The same elements with a new shape (a copy only if not contiguous).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if checked_numel(shape) != Some(self.len()) {
            return Err(TensorError::ShapeMismatch {
                op: "reshape",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
            });
        }
        let c = self.contiguous();
        let data = c
            .data
            .into_shape_with_order(IxDyn(shape))
            .expect("contiguous array with matching length reshapes");
        Ok(Tensor { data })
    }

    /// Collapses dimensions `start..` into one: `[N, C, H, W].flatten_from(1)` is `[N, C*H*W]`.
    pub fn flatten_from(&self, start: usize) -> Result<Tensor> {
        if start > self.ndim() {
            return Err(TensorError::AxisOutOfRange {
                op: "flatten_from",
                axis: start as isize,
                ndim: self.ndim(),
            });
        }
        let mut shape = self.shape()[..start].to_vec();
        shape.push(numel(&self.shape()[start..]));
        self.reshape(&shape)
    }

    /// Reorders the axes (a view, no copy): output axis `i` is input axis `axes[i]`.
    pub fn permute(&self, axes: &[usize]) -> Result<Tensor> {
        let nd = self.ndim();
        let mut seen = vec![false; nd];
        if axes.len() != nd || axes.iter().any(|&a| a >= nd || std::mem::replace(&mut seen[a], true)) {
            return Err(TensorError::InvalidArgument {
                op: "permute",
                reason: format!("{axes:?} is not a permutation of the {nd} axes of {:?}", self.shape()),
            });
        }
        Ok(Tensor { data: self.data.clone().permuted_axes(IxDyn(axes)) })
    }

    /// Swaps two axes (a view).
    pub fn transpose(&self, a: usize, b: usize) -> Result<Tensor> {
        let nd = self.ndim();
        for ax in [a, b] {
            if ax >= nd {
                return Err(TensorError::AxisOutOfRange { op: "transpose", axis: ax as isize, ndim: nd });
            }
        }
        let mut data = self.data.clone();
        data.swap_axes(a, b);
        Ok(Tensor { data })
    }

    /// The transpose of a matrix (a view). Errors unless the tensor is 2-D.
    pub fn t(&self) -> Result<Tensor> {
        if self.ndim() != 2 {
            return Err(TensorError::InvalidShape {
                op: "t",
                shape: self.shape().to_vec(),
                reason: "needs a 2-D tensor".into(),
            });
        }
        self.transpose(0, 1)
    }

    /// Elements `start..start + len` along `axis` (a view).
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        let ax = check_axis("narrow", axis, self.ndim())?;
        let size = self.shape()[ax];
        if start + len > size {
            return Err(TensorError::IndexOutOfRange { op: "narrow", index: (start + len) as i64, size });
        }
        let mut data = self.data.clone();
        data.slice_axis_inplace(Axis(ax), Slice::from(start..start + len));
        Ok(Tensor { data })
    }

    /// Inserts an axis of size one at `axis`.
    pub fn unsqueeze(&self, axis: usize) -> Result<Tensor> {
        if axis > self.ndim() {
            return Err(TensorError::AxisOutOfRange {
                op: "unsqueeze",
                axis: axis as isize,
                ndim: self.ndim(),
            });
        }
        let mut shape = self.shape().to_vec();
        shape.insert(axis, 1);
        self.reshape(&shape)
    }

    /// Removes an axis of size one.
    pub fn squeeze(&self, axis: usize) -> Result<Tensor> {
        let ax = check_axis("squeeze", axis, self.ndim())?;
        if self.shape()[ax] != 1 {
            return Err(TensorError::InvalidShape {
                op: "squeeze",
                shape: self.shape().to_vec(),
                reason: format!("axis {ax} has size {}, not 1", self.shape()[ax]),
            });
        }
        let mut shape = self.shape().to_vec();
        shape.remove(ax);
        self.reshape(&shape)
    }

    /// Repeats the tensor along broadcast dimensions to reach `shape`
    /// (numpy broadcasting rules), materialising the result.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        let v = self.data.broadcast(IxDyn(shape)).ok_or_else(|| TensorError::ShapeMismatch {
            op: "broadcast_to",
            lhs: self.shape().to_vec(),
            rhs: shape.to_vec(),
        })?;
        Ok(Self::from_array(v.to_owned()))
    }

    /// Joins tensors along an existing axis; all other dimensions must match.
    pub fn concat(tensors: &[&Tensor], axis: usize) -> Result<Tensor> {
        let first = tensors.first().ok_or_else(|| TensorError::InvalidArgument {
            op: "concat",
            reason: "needs at least one tensor".into(),
        })?;
        let ax = check_axis("concat", axis, first.ndim())?;
        for t in &tensors[1..] {
            let ok = t.ndim() == first.ndim()
                && t.shape().iter().zip(first.shape()).enumerate().all(|(d, (a, b))| d == ax || a == b);
            if !ok {
                return Err(TensorError::ShapeMismatch {
                    op: "concat",
                    lhs: first.shape().to_vec(),
                    rhs: t.shape().to_vec(),
                });
            }
        }
        let views: Vec<_> = tensors.iter().map(|t| t.data.view()).collect();
        let a = ndarray::concatenate(Axis(ax), &views).expect("shapes checked above");
        Ok(Self::from_array(a.as_standard_layout().into_owned()))
    }

    /// Joins equally shaped tensors along a new axis.
    pub fn stack(tensors: &[&Tensor], axis: usize) -> Result<Tensor> {
        let first = tensors.first().ok_or_else(|| TensorError::InvalidArgument {
            op: "stack",
            reason: "needs at least one tensor".into(),
        })?;
        if axis > first.ndim() {
            return Err(TensorError::AxisOutOfRange { op: "stack", axis: axis as isize, ndim: first.ndim() });
        }
        for t in &tensors[1..] {
            if t.shape() != first.shape() {
                return Err(TensorError::ShapeMismatch {
                    op: "stack",
                    lhs: first.shape().to_vec(),
                    rhs: t.shape().to_vec(),
                });
            }
        }
        let views: Vec<_> = tensors.iter().map(|t| t.data.view()).collect();
        let a = ndarray::stack(Axis(axis), &views).expect("shapes checked above");
        Ok(Self::from_array(a.as_standard_layout().into_owned()))
    }

    /// Splits along `axis` into pieces of the given sizes (views).
    pub fn split(&self, axis: usize, sizes: &[usize]) -> Result<Vec<Tensor>> {
        let ax = check_axis("split", axis, self.ndim())?;
        if sizes.iter().sum::<usize>() != self.shape()[ax] {
            return Err(TensorError::InvalidArgument {
                op: "split",
                reason: format!("sizes {sizes:?} do not add up to dimension {ax} of {:?}", self.shape()),
            });
        }
        let mut start = 0;
        let mut out = Vec::with_capacity(sizes.len());
        for &s in sizes {
            out.push(self.narrow(ax, start, s)?);
            start += s;
        }
        Ok(out)
    }

    // ----- indexing -----------------------------------------------------

    /// Selects the entries `indices` along `axis` (rows of an embedding table, a batch).
    pub fn index_select(&self, axis: usize, indices: &[usize]) -> Result<Tensor> {
        let ax = check_axis("index_select", axis, self.ndim())?;
        let size = self.shape()[ax];
        if let Some(&bad) = indices.iter().find(|&&i| i >= size) {
            return Err(TensorError::IndexOutOfRange { op: "index_select", index: bad as i64, size });
        }
        if ax == 0 && self.is_contiguous() {
            // Fast path: copy whole rows.
            let row = numel(&self.shape()[1..]);
            let src = self.as_slice().expect("contiguous");
            let mut out = Vec::with_capacity(row * indices.len());
            for &i in indices {
                out.extend_from_slice(&src[i * row..(i + 1) * row]);
            }
            let mut shape = self.shape().to_vec();
            shape[0] = indices.len();
            return Self::from_vec(out, &shape);
        }
        Ok(Self::from_array(self.data.select(Axis(ax), indices)))
    }

    /// Adds the slices of `src` along `axis` into the entries `indices` of
    /// `self` (the adjoint of [`Tensor::index_select`]; repeated indices accumulate
    /// in index order).
    pub fn index_add_(&mut self, axis: usize, indices: &[usize], src: &Tensor) -> Result<()> {
        let ax = check_axis("index_add", axis, self.ndim())?;
        let mut want = self.shape().to_vec();
        want[ax] = indices.len();
        if src.shape() != want.as_slice() {
            return Err(TensorError::ShapeMismatch { op: "index_add", lhs: want, rhs: src.shape().to_vec() });
        }
        let size = self.shape()[ax];
        if let Some(&bad) = indices.iter().find(|&&i| i >= size) {
            return Err(TensorError::IndexOutOfRange { op: "index_add", index: bad as i64, size });
        }
        let mut dst = self.data.view_mut();
        for (j, &i) in indices.iter().enumerate() {
            let mut d = dst.index_axis_mut(Axis(ax), i);
            d += &src.data.index_axis(Axis(ax), j);
        }
        Ok(())
    }

    /// `out[i][j] = self[i][index[i][j]]` along `axis` (shown for axis 1 of a
    /// matrix). `index` holds one entry per output element, row-major, with
    /// shape `index_shape`, which must match `self` on every other axis.
    pub fn gather(&self, axis: usize, index: &[usize], index_shape: &[usize]) -> Result<Tensor> {
        let ax = check_axis("gather", axis, self.ndim())?;
        check_index_shape("gather", self.shape(), ax, index, index_shape)?;
        let size = self.shape()[ax];
        let (outer, inner) = outer_inner(index_shape, ax);
        let k = index_shape[ax];
        let src = self.contiguous();
        let s = src.as_slice().expect("contiguous");
        let mut out = vec![0.0f32; index.len()];
        for o in 0..outer {
            for j in 0..k {
                for i in 0..inner {
                    let pos = (o * k + j) * inner + i;
                    let idx = index[pos];
                    if idx >= size {
                        return Err(TensorError::IndexOutOfRange { op: "gather", index: idx as i64, size });
                    }
                    out[pos] = s[(o * size + idx) * inner + i];
                }
            }
        }
        Self::from_vec(out, index_shape)
    }

    /// The adjoint of [`Tensor::gather`]: `self[i][index[i][j]] += src[i][j]`
    /// (axis 1 shown), accumulating repeated indices in row-major order.
    pub fn scatter_add_(&mut self, axis: usize, index: &[usize], src: &Tensor) -> Result<()> {
        let ax = check_axis("scatter_add", axis, self.ndim())?;
        let index_shape = src.shape().to_vec();
        check_index_shape("scatter_add", self.shape(), ax, index, &index_shape)?;
        let size = self.shape()[ax];
        let (outer, inner) = outer_inner(&index_shape, ax);
        let k = index_shape[ax];
        let srcc = src.contiguous();
        let sv = srcc.as_slice().expect("contiguous");
        if let Some(&bad) = index.iter().find(|&&i| i >= size) {
            return Err(TensorError::IndexOutOfRange { op: "scatter_add", index: bad as i64, size });
        }
        let d = self.as_slice_mut();
        for o in 0..outer {
            for j in 0..k {
                for i in 0..inner {
                    let pos = (o * k + j) * inner + i;
                    d[(o * size + index[pos]) * inner + i] += sv[pos];
                }
            }
        }
        Ok(())
    }

    /// `cond != 0 ? a : b`, elementwise with broadcasting of all three.
    pub fn where_cond(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let shape = crate::ops::broadcast_shape("where", a.shape(), b.shape())?;
        let shape = crate::ops::broadcast_shape("where", cond.shape(), &shape)?;
        let c = cond.data.broadcast(IxDyn(&shape)).expect("broadcast shape computed");
        let av = a.data.broadcast(IxDyn(&shape)).expect("broadcast shape computed");
        let bv = b.data.broadcast(IxDyn(&shape)).expect("broadcast shape computed");
        let out =
            ndarray::Zip::from(&c).and(&av).and(&bv).map_collect(|&c, &a, &b| if c != 0.0 { a } else { b });
        Ok(Self::from_array(out))
    }

    /// Sets the elements where `mask != 0` (broadcast to this shape) to `value`.
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Result<Tensor> {
        let m = mask.data.broadcast(IxDyn(self.shape())).ok_or_else(|| TensorError::ShapeMismatch {
            op: "masked_fill",
            lhs: self.shape().to_vec(),
            rhs: mask.shape().to_vec(),
        })?;
        let out =
            ndarray::Zip::from(&self.data).and(&m).map_collect(|&x, &m| if m != 0.0 { value } else { x });
        Ok(Self::from_array(out))
    }
}

/// Checks that `axis < ndim`.
pub(crate) fn check_axis(op: &'static str, axis: usize, ndim: usize) -> Result<usize> {
    if axis < ndim { Ok(axis) } else { Err(TensorError::AxisOutOfRange { op, axis: axis as isize, ndim }) }
}

/// Products of the dimensions before and after `axis`.
pub(crate) fn outer_inner(shape: &[usize], axis: usize) -> (usize, usize) {
    (numel(&shape[..axis]), numel(&shape[axis + 1..]))
}

fn check_index_shape(
    op: &'static str,
    shape: &[usize],
    ax: usize,
    index: &[usize],
    index_shape: &[usize],
) -> Result<()> {
    let ok = index_shape.len() == shape.len()
        && index.len() == numel(index_shape)
        && index_shape.iter().zip(shape).enumerate().all(|(d, (a, b))| d == ax || a == b);
    if ok {
        Ok(())
    } else {
        Err(TensorError::ShapeMismatch { op, lhs: shape.to_vec(), rhs: index_shape.to_vec() })
    }
}
