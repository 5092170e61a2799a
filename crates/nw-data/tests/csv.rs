//! CSV and UCI readers.

use std::path::{Path, PathBuf};

use nw_data::{CsvOptions, DataError, Task, parse_csv, parse_uci_csv, read_csv, read_uci_csv};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nw-data-csv-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn repo_uci(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/uci").join(file)
}

#[test]
fn header_target_column_and_numeric_classes() {
    let d = tmp("basic");
    let p = d.join("t.csv");
    std::fs::write(&p, "label,a,b\n2,0.5,1\n\n0,-1,2e-1\r\n1,3,4\n").unwrap();
    let ds = read_csv(&p, &CsvOptions::default().header(true).target_column(0)).unwrap();
    assert_eq!(ds.features().shape(), &[3, 2]);
    assert_eq!(ds.features().to_vec(), vec![0.5, 1.0, -1.0, 0.2, 3.0, 4.0]);
    assert_eq!(ds.labels().unwrap(), &[2, 0, 1]);
    assert_eq!(ds.n_classes(), Some(3));
    assert!(ds.class_names().is_none());
}

#[test]
fn named_classes_are_numbered_in_sorted_order() {
    let text = "5.1;3.5;setosa\n7.0;3.2;versicolor\n4.9;3.0;setosa\n6.3;3.3;virginica\n";
    let ds = parse_csv(text, &CsvOptions::default().delimiter(';'), Path::new("x.csv")).unwrap();
    assert_eq!(ds.labels().unwrap(), &[0, 1, 0, 2]);
    assert_eq!(ds.class_names().unwrap(), &["setosa", "versicolor", "virginica"]);
}

#[test]
fn regression_targets() {
    let ds =
        parse_csv("1,2,0.25\n3,4,-1.5\n", &CsvOptions::default().task(Task::Regression), Path::new("r.csv"))
            .unwrap();
    let y = ds.targets().as_values().unwrap();
    assert_eq!(y.shape(), &[2, 1]);
    assert_eq!(y.to_vec(), vec![0.25, -1.5]);
}

#[test]
fn bad_number_names_file_line_and_column() {
    let d = tmp("bad");
    let p = d.join("bad.csv");
    // Line 1 header, line 2 fine, line 3 blank, line 4 has "1.2.3" in column 2.
    std::fs::write(&p, "a,b,y\n1,2,0\n\n3,1.2.3,1\n").unwrap();
    let e = read_csv(&p, &CsvOptions::default().header(true)).unwrap_err();
    match &e {
        DataError::Parse { line, path, .. } => {
            assert_eq!(*line, 4);
            assert_eq!(path, &p);
        }
        other => panic!("expected Parse, got {other:?}"),
    }
    assert!(
        e.to_string().ends_with("bad.csv, line 4: column 2: cannot read \"1.2.3\" as a finite number"),
        "{e}"
    );
    // Non-finite values are rejected too.
    assert!(matches!(
        parse_csv("1,nan,0\n", &CsvOptions::default(), Path::new("n.csv")),
        Err(DataError::Parse { line: 1, .. })
    ));
}

#[test]
fn malformed_tables_are_errors() {
    let o = CsvOptions::default();
    let p = Path::new("m.csv");
    // Ragged row.
    assert!(matches!(parse_csv("1,2,0\n1,0\n", &o, p), Err(DataError::Parse { line: 2, .. })));
    // A fractional class label.
    assert!(matches!(parse_csv("1,2,0\n1,2,0.5\n", &o, p), Err(DataError::Parse { line: 2, .. })));
    // No rows, or only a header.
    assert!(parse_csv("", &o, p).is_err());
    assert!(parse_csv("a,b\n", &o.clone().header(true), p).is_err());
    // A single column has no features.
    assert!(parse_csv("1\n2\n", &o, p).is_err());
    // Target column out of range.
    assert!(matches!(
        parse_csv("1,2\n", &o.clone().target_column(5), p),
        Err(DataError::InvalidArgument { .. })
    ));
    // Missing file: I/O error naming it.
    let e = read_csv("/nonexistent/nw/x.csv", &o).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }) && e.to_string().contains("/nonexistent/nw/x.csv"));
}

#[test]
fn uci_files_match_the_embedded_copies() {
    assert_eq!(read_uci_csv(repo_uci("iris.csv")).unwrap(), nw_data::iris());
    assert_eq!(read_uci_csv(repo_uci("wine_data.csv")).unwrap(), nw_data::wine());
    assert_eq!(read_uci_csv(repo_uci("breast_cancer.csv")).unwrap(), nw_data::breast_cancer());
    // digits.csv.gz through the generic reader (gzip detected by magic), unscaled 0..16.
    let raw = read_csv(repo_uci("digits.csv.gz"), &CsvOptions::default()).unwrap();
    let scaled: Vec<f32> = raw.features().to_vec().iter().map(|v| v / 16.0).collect();
    assert_eq!(scaled, nw_data::digits().features().to_vec());
    assert_eq!(raw.labels(), nw_data::digits().labels());
}

#[test]
fn uci_layout_errors() {
    let p = Path::new("u.csv");
    let ok = "2,2,a,b\n1,2,0\n3,4,1\n";
    let ds = parse_uci_csv(ok, p).unwrap();
    assert_eq!(ds.class_names().unwrap(), &["a", "b"]);
    // Truncated: the header promises 3 rows, 2 are present.
    let e = parse_uci_csv("3,2,a,b\n1,2,0\n3,4,1\n", p).unwrap_err();
    assert!(matches!(e, DataError::DimensionMismatch { .. }), "{e}");
    assert!(e.to_string().contains("expected 3, got 2"), "{e}");
    // Class beyond the names, on line 3.
    assert!(matches!(parse_uci_csv("2,2,a,b\n1,2,0\n3,4,2\n", p), Err(DataError::Parse { line: 3, .. })));
    // Row with a missing feature.
    assert!(matches!(parse_uci_csv("2,2,a,b\n1,0\n3,4,1\n", p), Err(DataError::Parse { line: 2, .. })));
    // Header that is not counts.
    assert!(matches!(parse_uci_csv("x,2,a,b\n1,2,0\n", p), Err(DataError::Parse { line: 1, .. })));
    assert!(matches!(parse_uci_csv("1,2\n1,2,0\n", p), Err(DataError::Parse { line: 1, .. })));
}
