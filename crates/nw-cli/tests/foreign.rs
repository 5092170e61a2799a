//! Models trained in PyTorch and saved as safetensors run through
//! `nw predict --weights FILE --config MODEL.toml` with PyTorch's logits
//! (rtol 1e-4) and classes. The fixture (fixtures/foreign/) is written by
//! `benches/torch/foreign_models.py`.

use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/foreign").join(name)
}

fn predict(model: &str, extra: &[&str]) -> Vec<String> {
    let w = fixture(&format!("{model}.safetensors"));
    let c = fixture(&format!("{model}.toml"));
    let i = fixture("inputs.csv");
    let mut args = vec![
        "predict",
        "--weights",
        w.to_str().unwrap(),
        "--config",
        c.to_str().unwrap(),
        "--input",
        i.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = Command::new(env!("CARGO_BIN_EXE_nw")).args(&args).output().expect("nw runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(String::from).collect()
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

fn same_as_pytorch(model: &str) {
    let want = &expected()[model];
    let logits: Vec<Vec<f64>> = predict(model, &["--logits"])
        .iter()
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    let rows = want["logits"].as_array().unwrap();
    assert_eq!(logits.len(), rows.len());
    for (r, (got, w)) in logits.iter().zip(rows).enumerate() {
        let w: Vec<f64> = w.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(got.len(), w.len());
        for (k, (g, w)) in got.iter().zip(&w).enumerate() {
            assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "{model} row {r} logit {k}: nw {g}, torch {w}");
        }
    }
    let classes: Vec<String> =
        predict(model, &[]).iter().map(|l| l.split('\t').next().unwrap().to_string()).collect();
    let want_classes: Vec<String> =
        want["classes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap().to_string()).collect();
    assert_eq!(classes, want_classes, "{model}: classes");
}

#[test]
fn a_pytorch_mlp_predicts_the_same() {
    same_as_pytorch("mlp");
}

#[test]
fn a_pytorch_cnn_predicts_the_same() {
    same_as_pytorch("cnn");
}

#[test]
fn weights_that_do_not_fit_are_refused_listing_the_tensors() {
    let w = fixture("cnn.safetensors");
    let c = fixture("mlp.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_nw"))
        .args(["eval", "--weights", w.to_str().unwrap(), "--config", c.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("0.weight") && err.contains("1.weight"), "{err}");
}
