//! CSV readers: plain numeric tables, and the UCI files shipped in `datasets/uci`.
//!
//! The dialect is simple on purpose: one example per line, fields split on a
//! single delimiter, surrounding spaces and one pair of enclosing double quotes
//! removed, blank lines skipped, no quoted delimiters, no missing values. Every
//! feature must parse as a finite `f32`; a field that does not is a
//! [`DataError::Parse`] naming the file, the line and the column. A file that
//! starts with the gzip magic `1f 8b` is decompressed first.

use std::collections::BTreeMap;
use std::path::Path;

use nw_tensor::Tensor;

use crate::dataset::Dataset;
use crate::error::{DataError, Result, invalid};
use crate::idx::{maybe_gunzip, read_file};

/// Whether the target column holds classes or real values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Task {
    /// Class labels: non-negative integers (`n_classes` = largest + 1), or
    /// names, numbered in sorted order and kept as class names.
    #[default]
    Classification,
    /// Real values: the targets become a `[n, 1]` tensor.
    Regression,
}

/// How [`read_csv`] reads a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Whether the first non-blank line holds column names (it is skipped). Default `false`.
    pub header: bool,
    /// The target column; `None` (the default) means the last one.
    pub target_column: Option<usize>,
    /// Classification (the default) or regression.
    pub task: Task,
    /// Field separator. Default `,`.
    pub delimiter: char,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { header: false, target_column: None, task: Task::Classification, delimiter: ',' }
    }
}

impl CsvOptions {
    /// Sets [`CsvOptions::header`].
    pub fn header(mut self, header: bool) -> Self {
        self.header = header;
        self
    }

    /// Sets [`CsvOptions::target_column`].
    pub fn target_column(mut self, column: usize) -> Self {
        self.target_column = Some(column);
        self
    }

    /// Sets [`CsvOptions::task`].
    pub fn task(mut self, task: Task) -> Self {
        self.task = task;
        self
    }

    /// Sets [`CsvOptions::delimiter`].
    pub fn delimiter(mut self, delimiter: char) -> Self {
        self.delimiter = delimiter;
        self
    }
}

fn fields(line: &str, delim: char) -> Vec<&str> {
    line.split(delim)
        .map(|f| {
            let f = f.trim();
            f.strip_prefix('"').and_then(|g| g.strip_suffix('"')).unwrap_or(f)
        })
        .collect()
}

fn parse_value(field: &str, path: &Path, line: usize, col: usize) -> Result<f32> {
    match field.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(DataError::Parse {
            path: path.to_path_buf(),
            line,
            message: format!("column {}: cannot read {field:?} as a finite number", col + 1),
        }),
    }
}

/// Non-blank lines with their 1-based numbers.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
}

fn decode_text(bytes: Vec<u8>, path: &Path) -> Result<String> {
    let bytes = maybe_gunzip(bytes, path)?;
    String::from_utf8(bytes).map_err(|e| DataError::Invalid {
        path: path.to_path_buf(),
        message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}

/// Reads a CSV file (raw or gzip) into a data set with features `[n, columns - 1]`.
pub fn read_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset> {
    let path = path.as_ref();
    let text = decode_text(read_file(path)?, path)?;
    parse_csv(&text, options, path)
}

/// [`read_csv`] on the bytes of a file already in memory (raw or gzip,
/// UTF-8); `path` only names the source in errors.
pub fn parse_csv_bytes(bytes: Vec<u8>, options: &CsvOptions, path: &Path) -> Result<Dataset> {
    parse_csv(&decode_text(bytes, path)?, options, path)
}

/// [`read_uci_csv`] on the bytes of a file already in memory (raw or gzip, UTF-8).
pub fn parse_uci_csv_bytes(bytes: Vec<u8>, path: &Path) -> Result<Dataset> {
    parse_uci_csv(&decode_text(bytes, path)?, path)
}

/// Parses CSV text; `path` only names the source in errors.
///
/// ```
/// use nw_data::{CsvOptions, Task};
/// let text = "x1,x2,y\n0.5,1,3.0\n-1,2e-1,4.5\n";
/// let opts = CsvOptions::default().header(true).task(Task::Regression);
/// let d = nw_data::parse_csv(text, &opts, "inline.csv".as_ref()).unwrap();
/// assert_eq!(d.features().shape(), &[2, 2]);
/// assert_eq!(d.targets().as_values().unwrap().to_vec(), vec![3.0, 4.5]);
///
/// let bad = nw_data::parse_csv("1,2,0\n1,x,1\n", &CsvOptions::default(), "bad.csv".as_ref());
/// assert_eq!(bad.unwrap_err().to_string(), "bad.csv, line 2: column 2: cannot read \"x\" as a finite number");
/// ```
pub fn parse_csv(text: &str, options: &CsvOptions, path: &Path) -> Result<Dataset> {
    let mut lines = data_lines(text);
    if options.header {
        lines.next();
    }
    let mut width: Option<usize> = None;
    let mut target_col = 0;
    let mut features: Vec<f32> = Vec::new();
    let mut raw_targets: Vec<(usize, String)> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    for (line, text) in lines {
        let f = fields(text, options.delimiter);
        let w = match width {
            Some(w) => w,
            None => {
                if f.len() < 2 {
                    return Err(DataError::Parse {
                        path: path.to_path_buf(),
                        line,
                        message: format!(
                            "needs at least 2 columns (features and a target), found {}",
                            f.len()
                        ),
                    });
                }
                target_col = options.target_column.unwrap_or(f.len() - 1);
                if target_col >= f.len() {
                    return Err(invalid(
                        "read_csv",
                        format!("target column {target_col} does not exist in {} columns", f.len()),
                    ));
                }
                width = Some(f.len());
                f.len()
            }
        };
        if f.len() != w {
            return Err(DataError::Parse {
                path: path.to_path_buf(),
                line,
                message: format!("expected {w} fields, found {}", f.len()),
            });
        }
        for (c, field) in f.iter().enumerate() {
            if c == target_col {
                match options.task {
                    Task::Classification => raw_targets.push((line, field.to_string())),
                    Task::Regression => values.push(parse_value(field, path, line, c)?),
                }
            } else {
                features.push(parse_value(field, path, line, c)?);
            }
        }
    }
    let Some(w) = width else {
        return Err(DataError::Parse {
            path: path.to_path_buf(),
            line: text.lines().count(),
            message: "no data rows".into(),
        });
    };
    let n = features.len() / (w - 1);
    let x = Tensor::from_vec(features, &[n, w - 1])?;
    match options.task {
        Task::Regression => Dataset::regression(x, Tensor::from_vec(values, &[n, 1])?),
        Task::Classification => classes_from_fields(x, raw_targets, path),
    }
}

/// Numeric labels if every target field is a number, else class names.
fn classes_from_fields(x: Tensor, raw: Vec<(usize, String)>, path: &Path) -> Result<Dataset> {
    if raw.iter().all(|(_, s)| s.parse::<f64>().is_ok()) {
        let mut labels = Vec::with_capacity(raw.len());
        for (line, s) in &raw {
            let v: f64 = s.parse().expect("checked above");
            if v < 0.0 || v.fract() != 0.0 || v > u32::MAX as f64 {
                return Err(DataError::Parse {
                    path: path.to_path_buf(),
                    line: *line,
                    message: format!(
                        "class label {s:?} is not a non-negative integer (use Task::Regression for real targets)"
                    ),
                });
            }
            labels.push(v as usize);
        }
        let n_classes = labels.iter().max().map_or(0, |m| m + 1);
        Dataset::classification(x, labels, n_classes)
    } else {
        let mut names: BTreeMap<&str, usize> = raw.iter().map(|(_, s)| (s.as_str(), 0)).collect();
        for (i, v) in names.values_mut().enumerate() {
            *v = i;
        }
        let labels = raw.iter().map(|(_, s)| names[s.as_str()]).collect();
        let class_names = names.keys().map(|s| s.to_string()).collect();
        Dataset::classification(x, labels, names.len())?.with_class_names(class_names)
    }
}

/// Reads a UCI table in the scikit-learn layout (raw or gzip): see [`parse_uci_csv`].
pub fn read_uci_csv(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    let text = decode_text(read_file(path)?, path)?;
    parse_uci_csv(&text, path)
}

/// Parses the layout of `iris.csv`, `wine_data.csv` and `breast_cancer.csv`:
/// a first line `rows,columns,class name,...`, then `rows` lines of
/// `columns` features and an integer class below the number of names.
///
/// The row count and every row's width are checked, so a truncated file is an
/// error. `path` only names the source in errors.
pub fn parse_uci_csv(text: &str, path: &Path) -> Result<Dataset> {
    let parse_err =
        |line: usize, message: String| DataError::Parse { path: path.to_path_buf(), line, message };
    let mut lines = data_lines(text);
    let (hline, header) = lines.next().ok_or_else(|| parse_err(1, "empty file".into()))?;
    let h = fields(header, ',');
    let count = |i: usize, what: &str| -> Result<usize> {
        h.get(i).and_then(|s| s.parse::<usize>().ok()).ok_or_else(|| {
            parse_err(
                hline,
                format!("header field {} ({what}) must be a count: `rows,columns,class names...`", i + 1),
            )
        })
    };
    let rows = count(0, "rows")?;
    let cols = count(1, "columns")?;
    let names: Vec<String> = h[2..].iter().map(|s| s.to_string()).collect();
    if names.is_empty() || cols == 0 {
        return Err(parse_err(hline, "header needs at least one column and one class name".into()));
    }
    // features and the class on each row
    let width = cols
        .checked_add(1)
        .ok_or_else(|| parse_err(hline, format!("header field 2 (columns) {cols} is too large")))?;
    // The header's counts are claims: reserve no more than the text can hold
    // (each feature takes at least two bytes, `0,`; each row at least four).
    let claimed = rows.saturating_mul(cols);
    let mut features = Vec::with_capacity(claimed.min(text.len() / 2));
    let mut labels = Vec::with_capacity(rows.min(text.len() / 4));
    for (line, text) in lines {
        let f = fields(text, ',');
        if f.len() != width {
            return Err(parse_err(line, format!("expected {width} fields, found {}", f.len())));
        }
        for (c, field) in f[..cols].iter().enumerate() {
            features.push(parse_value(field, path, line, c)?);
        }
        match f[cols].parse::<usize>() {
            Ok(l) if l < names.len() => labels.push(l),
            _ => {
                return Err(parse_err(
                    line,
                    format!(
                        "class {:?} is not an integer below {} (the number of class names)",
                        f[cols],
                        names.len()
                    ),
                ));
            }
        }
    }
    if labels.len() != rows {
        return Err(DataError::DimensionMismatch {
            what: format!("data rows in {} (from its header)", path.display()),
            expected: rows.to_string(),
            got: labels.len().to_string(),
        });
    }
    let x = Tensor::from_vec(features, &[rows, cols])?;
    let n_classes = names.len();
    Dataset::classification(x, labels, n_classes)?.with_class_names(names)
}
