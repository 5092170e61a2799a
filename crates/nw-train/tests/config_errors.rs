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

#[test]
fn a_configuration_past_the_size_limit_is_refused_before_it_is_parsed() {
    use nw_train::config::MAX_CONFIG_BYTES;
    // a valid file of exactly the limit (a comment pads it) is read
    let head = "[train]\nepochs = 2\n#";
    let at_limit = format!("{head}{}\n", "x".repeat(MAX_CONFIG_BYTES - head.len() - 1));
    assert_eq!(at_limit.len(), MAX_CONFIG_BYTES);
    assert_eq!(RunConfig::from_toml(&at_limit).unwrap().train.epochs, 2);
    let p = std::env::temp_dir().join(format!("nw-config-errors-{}-limit.toml", std::process::id()));
    std::fs::write(&p, &at_limit).unwrap();
    assert_eq!(RunConfig::from_file(&p).unwrap().train.epochs, 2);
    let _ = std::fs::remove_file(&p);
    // one byte more is an error, from a file or from text
    let over = format!("{at_limit} ");
    let e = error_of("over", &over);
    assert!(e.contains("FILE: longer than 65536 bytes"), "{e}");
    let e = RunConfig::from_toml(&over).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("65537 bytes; a configuration is at most 65536"), "{e}");
    // an endless file is not read to its end
    #[cfg(unix)]
    {
        let e = RunConfig::from_file("/dev/zero".as_ref()).unwrap_err().to_string();
        assert!(e.contains("longer than 65536 bytes"), "{e}");
    }
}

#[test]
fn what_nw_writes_for_a_long_layer_list_is_far_under_the_limit() {
    // 100 layers: the configuration nw stores in config.toml and in checkpoints
    let layers: Vec<String> = (0..50)
        .map(|_| "{ type = \"linear\", out = 64 }, { type = \"dropout\", p = 0.1 }".to_string())
        .collect();
    let mut c = RunConfig::default();
    c.set("model.layer", &format!("[{}]", layers.join(", "))).unwrap();
    let text = c.to_toml();
    assert!(text.len() < nw_train::config::MAX_CONFIG_BYTES / 4, "{} bytes", text.len());
    assert_eq!(RunConfig::from_toml(&text).unwrap(), c);
}
