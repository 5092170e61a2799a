//! A configuration file's errors name the file, the line of the key and the key.

use nw_train::RunConfig;

fn error_of(name: &str, text: &str) -> String {
    let p = std::env::temp_dir().join(format!("nw-config-errors-{}-{name}.toml", std::process::id()));
    std::fs::write(&p, text).unwrap();
    let e = RunConfig::from_file(&p).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let _ = std::fs::remove_file(&p);
    e.to_string().replace(&p.display().to_string(), "FILE")
}

#[test]
fn a_key_the_optimizer_does_not_have_names_its_line_and_the_keys_it_has() {
    let e = error_of(
        "momentum",
        "[model]\nhidden = [8]\n\n[optim]\nname = \"adam\"\nlr = 0.01\nmomentum = 0.9\n",
    );
    assert!(e.starts_with("configuration: FILE:7: optim.momentum = 0.9"), "{e}");
    assert!(e.contains("betas"), "{e}");
    let e = error_of("unknown", "[optim]\nname = \"sgd\"\n\n  mystery = 1\n[train]\nepochs = 2\n");
    assert!(e.contains("FILE:4:") && e.contains("mystery"), "{e}");
    // a type error keeps toml's own line and column
    let e = error_of("type", "[train]\nepochs = \"x\"\n");
    assert!(e.contains("line 2, column 10") && e.contains("expected u64"), "{e}");
}
