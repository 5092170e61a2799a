//! Model state files: PyTorch interoperability, round trips, and every way a
//! load can fail (all-or-nothing, never a panic).

use std::collections::BTreeMap;
use std::path::PathBuf;

use nw_autograd::Var;
use nw_nn::state::{self, StateError};
use nw_nn::{BatchNorm1d, BufferValue, Dtype, Linear, Module, NnError, Relu, Sequential};
use nw_tensor::{Rng, Tensor};

/// The architecture of `fixtures/state/torch_mlp_bn.safetensors`
/// (see benches/torch/state_fixture.py).
fn mlp_bn(seed: u64) -> Sequential {
    let mut rng = Rng::new(seed);
    Sequential::new()
        .with(Linear::new(4, 8, &mut rng))
        .with(BatchNorm1d::new(8))
        .with(Relu)
        .with(Linear::new(8, 3, &mut rng))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/state").join(name)
}

fn json_tensor(v: &serde_json::Value) -> Tensor {
    let shape: Vec<usize> = serde_json::from_value(v["shape"].clone()).unwrap();
    let data: Vec<f32> =
        serde_json::from_value::<Vec<f64>>(v["data"].clone()).unwrap().iter().map(|&x| x as f32).collect();
    Tensor::from_vec(data, &shape).unwrap()
}

/// Train a model one step (changes the running statistics) and return it.
fn trained(seed: u64) -> Sequential {
    let m = mlp_bn(seed);
    m.forward(&Var::constant(Tensor::randn(&[6, 4], 0.0, 1.0, &mut Rng::new(seed + 100)))).unwrap();
    m
}

fn assert_same_state(a: &dyn Module, b: &dyn Module) {
    let (sa, sb) = (state::state_dict(a), state::state_dict(b));
    assert_eq!(sa.keys().collect::<Vec<_>>(), sb.keys().collect::<Vec<_>>());
    for (k, v) in &sa {
        assert_eq!(v, &sb[k], "{k}");
    }
}

#[test]
fn pytorch_written_file_loads_and_computes_the_same() {
    let m = mlp_bn(0);
    state::load_safetensors(&m, &fixture("torch_mlp_bn.safetensors")).unwrap();
    let names: Vec<String> = state::state_dict(&m).into_keys().collect();
    assert_eq!(
        names,
        [
            "0.bias",
            "0.weight",
            "1.bias",
            "1.num_batches_tracked",
            "1.running_mean",
            "1.running_var",
            "1.weight",
            "3.bias",
            "3.weight"
        ]
    );
    // the fixture ran one training-mode forward before saving
    assert_eq!(
        state::state_dict(&m)["1.num_batches_tracked"],
        BufferValue::I64 { shape: vec![], data: vec![1] }
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("torch_mlp_bn.json")).unwrap()).unwrap();
    m.eval();
    let y = m.forward(&Var::constant(json_tensor(&doc["input"]))).unwrap();
    let want = json_tensor(&doc["output"]);
    assert_eq!(y.shape(), want.shape());
    // both sides compute in f32 with different summation orders (4- and 8-term
    // dot products): agreement to a few f32 roundings
    for (g, w) in y.value().to_vec().iter().zip(want.to_vec()) {
        assert!((g - w).abs() <= 1e-6 + 1e-5 * w.abs(), "{g} vs {w}");
    }
    // written back by nw: the same tensors, bit for bit, under the same names
    // (`benches/torch/state_fixture.py check` loads this copy into PyTorch strictly)
    let copy = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nw_resaved_torch_mlp_bn.safetensors");
    state::save_safetensors(&m, &copy).unwrap();
    let (orig, resaved) = (mlp_bn(1), mlp_bn(2));
    state::load_safetensors(&orig, &fixture("torch_mlp_bn.safetensors")).unwrap();
    state::load_safetensors(&resaved, &copy).unwrap();
    assert_same_state(&orig, &resaved);
}

#[test]
fn safetensors_round_trip_is_bit_exact() {
    let a = trained(1);
    let b = mlp_bn(2);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nw_mlp_bn.safetensors");
    state::save_safetensors(&a, &path).unwrap();
    state::load_safetensors(&b, &path).unwrap();
    assert_same_state(&a, &b);
    // the file PyTorch reads: F32 everywhere but the I64 counter
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, view) in st.tensors() {
        let want = if name.ends_with("num_batches_tracked") {
            safetensors::Dtype::I64
        } else {
            safetensors::Dtype::F32
        };
        assert_eq!(view.dtype(), want, "{name}");
    }
}

#[test]
fn bincode_round_trip_is_bit_exact() {
    let a = trained(3);
    let b = mlp_bn(4);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nw_mlp_bn.nwstate");
    state::save_bincode(&a, &path).unwrap();
    state::load_bincode(&b, &path).unwrap();
    assert_same_state(&a, &b);
}

fn mismatch(e: NnError) -> state::StateMismatch {
    match e {
        NnError::State(StateError::Mismatch(m)) => m,
        other => panic!("expected a mismatch, got {other}"),
    }
}

#[test]
fn mismatches_are_all_reported_and_nothing_is_written() {
    let a = trained(5);
    let bytes = state::to_safetensors(&a).unwrap();
    // other shapes and one layer fewer
    let mut rng = Rng::new(6);
    let b = Sequential::new().with(Linear::new(4, 7, &mut rng)).with(BatchNorm1d::new(7));
    let before = state::state_dict(&b);
    let m = mismatch(state::load_safetensors_bytes(&b, &bytes).unwrap_err());
    assert!(m.missing.is_empty());
    assert_eq!(m.unexpected, ["3.bias", "3.weight"]);
    assert_eq!(m.shapes.len(), 6, "{m}");
    assert!(m.shapes.contains(&("0.weight".to_string(), vec![7, 4], vec![8, 4])));
    let text = m.to_string();
    assert!(text.contains("1.running_var: shape [7] in the model, [8] in the file"), "{text}");
    assert_eq!(state::state_dict(&b), before, "a failed load must change nothing");
    // one more layer: missing keys
    let c = mlp_bn(7).with(Linear::new(3, 2, &mut rng));
    let m = mismatch(state::load_safetensors_bytes(&c, &bytes).unwrap_err());
    assert_eq!(m.missing, ["4.bias", "4.weight"]);
    // the same through bincode
    let m = mismatch(state::load_bincode_bytes(&c, &state::to_bincode(&a).unwrap()).unwrap_err());
    assert_eq!(m.missing, ["4.bias", "4.weight"]);
}

#[test]
fn wrong_dtypes_are_reported() {
    let m = Sequential::new().with(Linear::new(2, 1, &mut Rng::new(8)));
    // a file with an F64 weight and an I64 bias
    let w: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let b: Vec<u8> = 3i64.to_le_bytes().to_vec();
    let views = vec![
        ("0.weight", safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![1, 2], &w).unwrap()),
        ("0.bias", safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![1], &b).unwrap()),
    ];
    let bytes = safetensors::serialize(views, None).unwrap();
    let mm = mismatch(state::load_safetensors_bytes(&m, &bytes).unwrap_err());
    assert_eq!(
        mm.dtypes,
        [
            ("0.bias".to_string(), Dtype::F32, "I64".to_string()),
            ("0.weight".to_string(), Dtype::F32, "F64".to_string())
        ]
    );
    assert!(mm.to_string().contains("0.weight: dtype F32 in the model, F64 in the file"), "{mm}");
    // a counter written as F32 is a dtype mismatch too
    let bn = Sequential::new().with(BatchNorm1d::new(2));
    let mut sd = state::state_dict(&bn);
    sd.insert("0.num_batches_tracked".into(), BufferValue::F32(Tensor::scalar(1.0)));
    let mm = mismatch(state::load_state_dict(&bn, &sd).unwrap_err());
    assert_eq!(mm.dtypes, [("0.num_batches_tracked".to_string(), Dtype::I64, "F32".to_string())]);
}

#[test]
fn truncated_or_corrupted_files_are_errors() {
    let a = trained(9);
    let b = mlp_bn(10);
    let before = state::state_dict(&b);
    let corrupt = |e: NnError| matches!(e, NnError::State(StateError::Corrupt { .. }));
    for bytes in [state::to_safetensors(&a).unwrap(), state::to_bincode(&a).unwrap()] {
        let is_st = bytes[..8] != *b"nwstate\0";
        let load = |data: &[u8]| {
            if is_st { state::load_safetensors_bytes(&b, data) } else { state::load_bincode_bytes(&b, data) }
        };
        // every proper prefix is refused
        for len in 0..bytes.len() {
            let e = load(&bytes[..len]).unwrap_err();
            assert!(corrupt(e.clone()), "prefix {len}: {e}");
        }
        // trailing garbage is refused
        let mut long = bytes.clone();
        long.extend_from_slice(&[0, 1, 2]);
        assert!(load(&long).is_err());
    }
    // bincode: any flipped byte after the magic fails the version or checksum check
    let good = state::to_bincode(&a).unwrap();
    for i in (8..good.len()).step_by(7) {
        let mut bad = good.clone();
        bad[i] ^= 0x55;
        assert!(corrupt(state::load_bincode_bytes(&b, &bad).unwrap_err()), "byte {i}");
    }
    // safetensors: a damaged header is refused
    let mut st = state::to_safetensors(&a).unwrap();
    st[10] = b'!';
    assert!(state::load_safetensors_bytes(&b, &st).is_err());
    assert_eq!(state::state_dict(&b), before, "failed loads must change nothing");
    // a missing file names the path
    let e = state::load_bincode(&b, &fixture("no_such_file")).unwrap_err().to_string();
    assert!(e.contains("no_such_file"), "{e}");
}

#[test]
fn state_dict_map_round_trip() {
    let a = trained(11);
    let b = mlp_bn(12);
    let sd: BTreeMap<String, BufferValue> = state::state_dict(&a);
    state::load_state_dict(&b, &sd).unwrap();
    assert_same_state(&a, &b);
}
