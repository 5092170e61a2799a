//! Module trees: PyTorch state_dict names through nesting, train/eval
//! propagation, parameter counts, and gradients reaching every parameter.

use nw_autograd::{Param, Var};
use nw_nn::{BatchNorm1d, Buffer, Linear, Module, Relu, Result, Sequential, Tanh, prefixed};
use nw_tensor::{Rng, Tensor};

/// A hand-written container: `encoder` (a Sequential) then `head`.
struct Net {
    encoder: Sequential,
    head: Linear,
}

impl Module for Net {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.head.forward(&self.encoder.forward(x)?)
    }
    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut v = prefixed("encoder", self.encoder.named_parameters());
        v.extend(prefixed("head", self.head.named_parameters()));
        v
    }
    fn named_buffers(&self) -> Vec<(String, Buffer)> {
        prefixed("encoder", self.encoder.named_buffers())
    }
    fn set_training(&self, training: bool) {
        self.encoder.set_training(training);
        self.head.set_training(training);
    }
    fn describe(&self) -> String {
        format!("Net(encoder={}, head={})", self.encoder.describe(), self.head.describe())
    }
}

fn net(seed: u64) -> Net {
    let mut rng = Rng::new(seed);
    Net {
        encoder: Sequential::new().with(Linear::new(5, 6, &mut rng)).with(BatchNorm1d::new(6)).with(Relu),
        head: Linear::new(6, 2, &mut rng),
    }
}

#[test]
fn nested_names_follow_pytorch() {
    let n = net(0);
    let names: Vec<String> = n.named_parameters().into_iter().map(|(k, _)| k).collect();
    // torch: Net(encoder=nn.Sequential(Linear, BatchNorm1d, ReLU), head=Linear).state_dict() keys
    assert_eq!(
        names,
        [
            "encoder.0.weight",
            "encoder.0.bias",
            "encoder.1.weight",
            "encoder.1.bias",
            "head.weight",
            "head.bias"
        ]
    );
    let bufs: Vec<String> = n.named_buffers().into_iter().map(|(k, _)| k).collect();
    assert_eq!(bufs, ["encoder.1.running_mean", "encoder.1.running_var", "encoder.1.num_batches_tracked"]);
    // 5*6 + 6 + 6 + 6 + 6*2 + 2
    assert_eq!(n.num_parameters(), 62);
    assert!(n.describe().starts_with("Net(encoder=Sequential((0): Linear(in_features=5"));
}

#[test]
fn mode_reaches_nested_children() {
    let n = net(1);
    let x = Var::constant(Tensor::randn(&[4, 5], 0.0, 1.0, &mut Rng::new(2)));
    let count = |n: &Net| n.named_buffers()[2].1.tensor().to_vec()[0];
    n.forward(&x).unwrap();
    assert_eq!(count(&n), 1.0);
    n.eval();
    n.forward(&x).unwrap();
    assert_eq!(count(&n), 1.0, "eval mode must not update running statistics");
    n.train();
    n.forward(&x).unwrap();
    assert_eq!(count(&n), 2.0);
}

#[test]
fn every_parameter_gets_a_gradient() {
    let n = net(3);
    let x = Var::constant(Tensor::randn(&[4, 5], 0.0, 1.0, &mut Rng::new(4)));
    let loss = n.forward(&x).unwrap().square().mean();
    let g = loss.backward().unwrap();
    for (name, p) in n.named_parameters() {
        let gp = g.get(&p).unwrap_or_else(|| panic!("{name} has no gradient"));
        assert_eq!(gp.shape(), p.shape().as_slice());
    }
}

#[test]
fn same_seed_same_model() {
    let (a, b) = (net(7), net(7));
    for ((na, pa), (_, pb)) in a.named_parameters().into_iter().zip(b.named_parameters()) {
        assert_eq!(pa.value(), pb.value(), "{na}");
    }
    let s = Sequential::new().with(Tanh);
    assert!(s.named_parameters().is_empty());
    let y = s.forward(&Var::constant(Tensor::zeros(&[2]))).unwrap();
    assert_eq!(y.value().to_vec(), vec![0.0, 0.0]);
    assert!(Sequential::new().is_empty());
}
