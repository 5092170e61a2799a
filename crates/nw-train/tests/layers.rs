//! Architecture as data: explicit layer lists build what they say, name
//! their weights as PyTorch's `nn.Sequential` does, fail before training
//! with the layer index and both shapes, and the templates are layer lists.

use std::sync::{Arc, Mutex};

use nw_autograd::Var;
use nw_nn::{Conv2d, Flatten, Linear, Lstm, MaxPool2d, Module, Relu, RnnConfig, Sequential, Tanh};
use nw_tensor::conv::Conv2dSpec;
use nw_tensor::{Rng, Tensor};
use nw_train::layers::{LAYER_TYPES, LayerSpec, build_layers, layers_toml};
use nw_train::models::{Activation, Dropout, LastStep, Reshape, build_model};
use nw_train::{ModelSpec, RunConfig};

fn weights(m: &dyn Module) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    m.named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.shape(), p.value().to_vec().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

fn list(toml_layers: &str) -> Vec<LayerSpec> {
    RunConfig::from_toml(&format!("[model]\nlayer = [\n{toml_layers}\n]\n")).expect("parses").model.layer
}

fn config_error(layers: &str, input: &[usize], outputs: usize) -> String {
    match build_layers(&list(layers), input, outputs, &mut Rng::new(0)) {
        Ok(_) => panic!("built {layers}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{e}");
            e.to_string()
        }
    }
}

/// The templates as they were built by hand before layer lists existed:
/// the same modules, drawn from the generator in the same order.
#[test]
fn templates_build_the_same_weights_as_the_hand_written_networks() {
    let mut rng = Rng::new(7);
    let mlp = ModelSpec::Mlp { hidden: vec![32, 16], activation: Activation::Tanh, dropout: 0.25 };
    let built = build_model(&mlp, &[64], 10, &mut rng).unwrap();
    let mut r = Rng::new(7);
    let mut hand = Sequential::new();
    hand.push(Box::new(Linear::new(64, 32, &mut r)));
    hand.push(Box::new(Tanh));
    let d1 = Arc::new(Mutex::new(r.fork()));
    hand.push(Box::new(Dropout::new(0.25, d1)));
    hand.push(Box::new(Linear::new(32, 16, &mut r)));
    hand.push(Box::new(Tanh));
    let d2 = Arc::new(Mutex::new(r.fork()));
    hand.push(Box::new(Dropout::new(0.25, d2.clone())));
    hand.push(Box::new(Linear::new(16, 10, &mut r)));
    assert_eq!(weights(&built.model), weights(&hand));
    assert_eq!(built.rngs.len(), 2);
    // the dropout streams are the same too
    assert_eq!(built.rngs[1].lock().unwrap().next_u64(), d2.lock().unwrap().next_u64());
    assert_eq!(rng.next_u64(), r.next_u64(), "the generator is left where the hand-built net left it");

    let cnn = ModelSpec::Cnn { channels: vec![4, 8], hidden: 16, dropout: 0.0 };
    let built = build_model(&cnn, &[64], 10, &mut Rng::new(3)).unwrap();
    let mut r = Rng::new(3);
    let spec = Conv2dSpec { padding: (1, 1), ..Default::default() };
    let hand = Sequential::new()
        .with(Reshape { shape: vec![1, 8, 8] })
        .with(Conv2d::new(1, 4, (3, 3), spec, true, &mut r).unwrap())
        .with(Relu)
        .with(MaxPool2d::new(2))
        .with(Conv2d::new(4, 8, (3, 3), spec, true, &mut r).unwrap())
        .with(Relu)
        .with(MaxPool2d::new(2))
        .with(Flatten::default())
        .with(Linear::new(8 * 2 * 2, 16, &mut r))
        .with(Relu)
        .with(Linear::new(16, 10, &mut r));
    assert_eq!(weights(&built.model), weights(&hand));

    let lstm = ModelSpec::Lstm { hidden: 12, layers: 2 };
    let built = build_model(&lstm, &[64], 10, &mut Rng::new(5)).unwrap();
    let mut r = Rng::new(5);
    let hand = Sequential::new()
        .with(Reshape { shape: vec![8, 8] })
        .with(Lstm::new(RnnConfig::new(8, 12).num_layers(2).batch_first(true), &mut r).unwrap())
        .with(LastStep)
        .with(Linear::new(12, 10, &mut r));
    assert_eq!(weights(&built.model), weights(&hand));
}

#[test]
fn a_template_and_its_printed_layer_list_are_the_same_model() {
    for spec in [
        ModelSpec::Mlp { hidden: vec![24], activation: Activation::Gelu, dropout: 0.1 },
        ModelSpec::Cnn { channels: vec![4], hidden: 8, dropout: 0.2 },
        ModelSpec::Gru { hidden: 6, layers: 1 },
        ModelSpec::Rnn { hidden: 6, layers: 2 },
    ] {
        let layers = spec.layers(&[64]).unwrap();
        // printed as inline tables, parsed back
        let text = layers_toml(&layers);
        let back = RunConfig::from_toml(&format!("[model]\n{text}")).unwrap().model.layer;
        assert_eq!(back, layers, "{text}");
        let a = build_model(&spec, &[64], 10, &mut Rng::new(1)).unwrap();
        let b = build_layers(&back, &[64], 10, &mut Rng::new(1)).unwrap();
        assert_eq!(weights(&a.model), weights(&b.model), "{spec:?}");
        assert_eq!(a.model.describe(), b.model.describe());
    }
}

#[test]
fn names_are_pytorch_sequential_positions() {
    let l = list(
        r#"{ type = "reshape", shape = [8, 8] },
           { type = "lstm", hidden = 5, bidirectional = true },
           { type = "last_step" },
           { type = "layer_norm" },
           { type = "linear", out = 3, bias = false }"#,
    );
    let b = build_layers(&l, &[64], 3, &mut Rng::new(0)).unwrap();
    let names: Vec<String> = b.model.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "1.weight_ih_l0",
            "1.weight_hh_l0",
            "1.bias_ih_l0",
            "1.bias_hh_l0",
            "1.weight_ih_l0_reverse",
            "1.weight_hh_l0_reverse",
            "1.bias_ih_l0_reverse",
            "1.bias_hh_l0_reverse",
            "3.weight",
            "3.bias",
            "4.weight",
        ]
    );
    // the layer norm sees both directions
    let shapes: Vec<Vec<usize>> = b.model.named_parameters().into_iter().map(|(_, p)| p.shape()).collect();
    assert_eq!(shapes[8], [10]);
    assert_eq!(shapes[10], [3, 10]);
}

#[test]
fn shapes_that_do_not_connect_name_the_layer_and_both_shapes() {
    // a Linear on a feature map, without a flatten
    let e = config_error(
        r#"{ type = "reshape", shape = [1, 8, 8] }, { type = "conv2d", out = 4, kernel = 3 }, { type = "linear" }"#,
        &[64],
        10,
    );
    assert!(e.contains("model.layer[2] (linear)") && e.contains("[4, 6, 6]") && e.contains("flatten"), "{e}");
    // a stated in_features that is not what arrives
    let e = config_error(r#"{ type = "linear", in = 100, out = 5 }, { type = "linear" }"#, &[64], 10);
    assert!(e.contains("model.layer[0]") && e.contains("in = 100") && e.contains("[64]"), "{e}");
    // a convolution on tabular rows: the hint says how to view them as images
    let e = config_error(r#"{ type = "conv2d", out = 4, kernel = 3 }"#, &[64], 10);
    assert!(e.contains("[C, H, W]") && e.contains("shape = [1, 8, 8]"), "{e}");
    // a kernel larger than the image
    let e = config_error(
        r#"{ type = "reshape", shape = [1, 8, 8] }, { type = "conv2d", out = 4, kernel = 9 }, { type = "flatten" }, { type = "linear" }"#,
        &[64],
        10,
    );
    assert!(e.contains("model.layer[1] (conv2d)") && e.contains("[1, 8, 8]"), "{e}");
    // pooling an image away
    let e = config_error(
        r#"{ type = "reshape", shape = [1, 2, 2] }, { type = "max_pool2d", kernel = 2 }, { type = "max_pool2d", kernel = 2 }"#,
        &[4],
        10,
    );
    assert!(e.contains("model.layer[2] (max_pool2d)") && e.contains("[1, 1, 1]"), "{e}");
    // the end does not give the task's outputs
    let e = config_error(r#"{ type = "linear", out = 12 }"#, &[64], 10);
    assert!(e.contains("model.layer[0]") && e.contains("[12]") && e.contains("[10]"), "{e}");
    // reshape of the wrong size
    let e = config_error(r#"{ type = "reshape", shape = [1, 7, 7] }"#, &[64], 10);
    assert!(e.contains("model.layer[0] (reshape)") && e.contains("64"), "{e}");
    // ranges
    let e = config_error(r#"{ type = "dropout", p = 1.0 }, { type = "linear" }"#, &[64], 10);
    assert!(e.contains("p = 1") && e.contains("[0, 1)"), "{e}");
    let e = config_error(r#"{ type = "linear", out = 0 }"#, &[64], 10);
    assert!(e.contains("out = 0"), "{e}");
    let e = config_error(r#"{ type = "linear", out = 100000000000 }"#, &[64], 10);
    assert!(e.contains("out = 100000000000"), "{e}");
    let e = config_error(r#"{ type = "group_norm", groups = 3 }, { type = "linear" }"#, &[64], 10);
    assert!(e.contains("model.layer[0] (group_norm)"), "{e}");
    let e = config_error(r#"{ type = "softmax", dim = 1 }"#, &[10], 10);
    assert!(e.contains("dim = 1"), "{e}");
}

#[test]
fn unknown_types_and_keys_are_errors_naming_them() {
    let e = RunConfig::from_toml("[model]\nlayer = [{ type = \"lineer\" }]\n").unwrap_err().to_string();
    assert!(e.contains("lineer"), "{e}");
    let e =
        RunConfig::from_toml("[model]\nlayer = [{ type = \"linear\", outt = 3 }]\n").unwrap_err().to_string();
    assert!(e.contains("outt"), "{e}");
    let e = RunConfig::from_toml("[model]\nkind = \"cnn\"\nlayer = [{ type = \"linear\" }]\n")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.kind") && e.contains("model.layer"), "{e}");
    let e =
        RunConfig::from_toml("[model]\nkind = \"sequential\"\n").unwrap().validate().unwrap_err().to_string();
    assert!(e.contains("layer list"), "{e}");
}

/// One small network per layer type: every type parses, builds, connects
/// and runs forward and backward.
#[test]
fn every_layer_type_builds_and_trains() {
    let image = r#"{ type = "reshape", shape = [2, 4, 4] }"#;
    let head = r#"{ type = "flatten" }, { type = "linear" }"#;
    let cases: Vec<(&str, String)> = vec![
        ("linear", r#"{ type = "linear", out = 5 }, { type = "linear" }"#.into()),
        ("conv1d", r#"{ type = "reshape", shape = [2, 16] }, { type = "conv1d", out = 3, kernel = 3, padding = 1 }, { type = "flatten" }, { type = "linear" }"#.into()),
        ("conv2d", format!(r#"{image}, {{ type = "conv2d", out = 3, kernel = [3, 1], stride = 2 }}, {head}"#)),
        ("conv_transpose2d", format!(r#"{image}, {{ type = "conv_transpose2d", out = 2, kernel = 2, stride = 2 }}, {head}"#)),
        ("max_pool2d", format!(r#"{image}, {{ type = "max_pool2d", kernel = 3, stride = 2, ceil_mode = true }}, {head}"#)),
        ("avg_pool2d", format!(r#"{image}, {{ type = "avg_pool2d", kernel = 2, padding = 1, count_include_pad = false }}, {head}"#)),
        ("adaptive_avg_pool2d", format!(r#"{image}, {{ type = "adaptive_avg_pool2d", output = 1 }}, {head}"#)),
        ("upsample", format!(r#"{image}, {{ type = "upsample", scale_factor = 2.0, mode = "bilinear" }}, {head}"#)),
        ("batch_norm", format!(r#"{image}, {{ type = "batch_norm" }}, {head}, {{ type = "batch_norm" }}"#).replace(r#"{ type = "linear" }, { type = "batch_norm" }"#, r#"{ type = "linear", out = 4 }, { type = "batch_norm" }, { type = "linear" }"#)),
        ("layer_norm", r#"{ type = "layer_norm", affine = false }, { type = "linear" }"#.into()),
        ("group_norm", format!(r#"{image}, {{ type = "group_norm", groups = 2 }}, {head}"#)),
        ("instance_norm", format!(r#"{image}, {{ type = "instance_norm", affine = true }}, {head}"#)),
        ("dropout", r#"{ type = "dropout", p = 0.5 }, { type = "linear" }"#.into()),
        ("embedding", r#"{ type = "embedding", num = 3, dim = 2, padding_idx = 0 }, { type = "flatten" }, { type = "linear" }"#.into()),
        ("rnn", r#"{ type = "reshape", shape = [4, 8] }, { type = "rnn", hidden = 3, nonlinearity = "relu", layers = 2 }, { type = "last_step" }, { type = "linear" }"#.into()),
        ("lstm", r#"{ type = "reshape", shape = [4, 8] }, { type = "lstm", hidden = 3 }, { type = "flatten" }, { type = "linear" }"#.into()),
        ("gru", r#"{ type = "reshape", shape = [4, 8] }, { type = "gru", hidden = 3, bidirectional = true }, { type = "last_step" }, { type = "linear" }"#.into()),
        ("last_step", r#"{ type = "reshape", shape = [4, 8] }, { type = "last_step" }, { type = "linear" }"#.into()),
        ("flatten", format!(r#"{image}, {head}"#)),
        ("reshape", format!(r#"{image}, {head}"#)),
        ("relu", r#"{ type = "relu" }, { type = "linear" }"#.into()),
        ("tanh", r#"{ type = "tanh" }, { type = "linear" }"#.into()),
        ("sigmoid", r#"{ type = "sigmoid" }, { type = "linear" }"#.into()),
        ("gelu", r#"{ type = "gelu", approximate = "tanh" }, { type = "linear" }"#.into()),
        ("silu", r#"{ type = "silu" }, { type = "linear" }"#.into()),
        ("leaky_relu", r#"{ type = "leaky_relu", negative_slope = 0.2 }, { type = "linear" }"#.into()),
        ("elu", r#"{ type = "elu" }, { type = "linear" }"#.into()),
        ("softplus", r#"{ type = "softplus", beta = 2.0 }, { type = "linear" }"#.into()),
        ("softmax", r#"{ type = "linear" }, { type = "softmax" }"#.into()),
        ("log_softmax", r#"{ type = "linear" }, { type = "log_softmax", dim = 0 }"#.into()),
    ];
    let covered: Vec<&str> = cases.iter().map(|(t, _)| *t).collect();
    assert_eq!(covered, LAYER_TYPES, "one case per layer type, in LAYER_TYPES order");
    for (ty, text) in &cases {
        let layers = list(text);
        assert!(layers.iter().any(|l| l.type_name() == *ty), "{ty}: {text}");
        let b = build_layers(&layers, &[32], 4, &mut Rng::new(2)).unwrap_or_else(|e| panic!("{ty}: {e}"));
        // the embedding reads indices; everything else reads features
        let x = if *ty == "embedding" {
            Tensor::from_fn(&[3, 32], {
                let mut i = 0;
                move || {
                    i += 1;
                    (i % 3) as f32
                }
            })
        } else {
            Tensor::randn(&[3, 32], 0.0, 1.0, &mut Rng::new(9))
        };
        let y = b.model.forward(&Var::constant(x)).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(y.shape(), [3, 4], "{ty}");
        let g = y.mul(&y).unwrap().sum().backward().unwrap();
        for (n, p) in b.model.named_parameters() {
            let gp = g.get(&p).unwrap_or_else(|| panic!("{ty}: no gradient for {n}"));
            assert!(gp.to_vec().iter().all(|v| v.is_finite()), "{ty}: {n}");
        }
        // printed and parsed back: the same list
        let back = list(layers_toml(&layers).trim_start_matches("layer = [\n").trim_end_matches("]\n"));
        assert_eq!(back, layers, "{ty}");
    }
}

#[test]
fn a_layer_list_trains_from_a_config_and_resumes() {
    let text = r#"
[model]
layer = [
  { type = "reshape", shape = [1, 8, 8] },
  { type = "conv2d", out = 4, kernel = 3, padding = 1 },
  { type = "batch_norm" },
  { type = "relu" },
  { type = "max_pool2d", kernel = 2 },
  { type = "flatten" },
  { type = "dropout", p = 0.2 },
  { type = "linear" },
]
[train]
epochs = 2
"#;
    let cfg = RunConfig::from_toml(text).unwrap();
    assert_eq!(cfg.model.kind, nw_train::config::ModelKind::Sequential);
    // the written config reads back to the same run configuration
    assert_eq!(RunConfig::from_toml(&cfg.to_toml()).unwrap(), cfg);
    let mut run = nw_train::build_run(&cfg).unwrap();
    let first = run.trainer.train_epoch(&run.loader, Some(&run.validation), &mut |_, _, _| {}).unwrap();
    assert!(first.train_loss.is_finite());
    // a checkpoint after epoch 1 (with the batch norm's counters) restores into a fresh build
    let ck = run.trainer.checkpoint(&cfg.to_toml()).unwrap();
    let second = run.trainer.train_epoch(&run.loader, Some(&run.validation), &mut |_, _, _| {}).unwrap();
    let mut again = nw_train::build_run(&cfg).unwrap();
    again.trainer.restore(&ck).unwrap();
    let resumed =
        again.trainer.train_epoch(&again.loader, Some(&again.validation), &mut |_, _, _| {}).unwrap();
    assert_eq!(resumed.train_loss.to_bits(), second.train_loss.to_bits());
    assert_eq!(weights(&run.trainer.model), weights(&again.trainer.model));
}
