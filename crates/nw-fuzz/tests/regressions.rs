//! Regression tests: each input the mutation fuzzer of issue 13 (and this
//! crate's own runs) found, rebuilt by hand, must give a typed error with a
//! peak allocation inside `nw_fuzz::harness::alloc_bound`; and every seed
//! of the checked-in corpus must be accepted.

use nw_fuzz::Target;
use nw_fuzz::alloc::{CountingAlloc, measure};
use nw_fuzz::harness::{
    Outcome, TOML_BYTES_PER_BYTE, alloc_bound, corpus_dir, load_corpus, run_one, toml_allowance,
};
use nw_fuzz::mutate::{Enc, encode};
use nw_fuzz::targets::{fnv1a, gzip};
use nw_nn::{Embedding, Linear, Lstm, RnnConfig};
use nw_tensor::{Rng, Tensor};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `target` on `input`, which must be refused with an error containing `want`.
fn refused(target: Target, input: &[u8], want: &str) {
    match run_one(target, input) {
        (Outcome::Refused(e), stats, _) => {
            assert!(e.contains(want), "{}: {e:?} does not mention {want:?}", target.name());
            assert!(stats.peak <= alloc_bound(input), "{stats:?}");
        }
        (o, stats, _) => panic!("{}: expected a typed error, got {o:?} ({stats:?})", target.name()),
    }
}

/// Runs `target` on `input`, which must be accepted by one of its readers or
/// refused with a typed error, inside the allocation bound.
fn handled(target: Target, input: &[u8]) {
    let (o, stats, _) = run_one(target, input);
    assert!(!matches!(o, Outcome::Failed(_)), "{}: {o:?}", target.name());
    assert!(stats.peak <= alloc_bound(input), "{stats:?}");
}

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    dims.iter().for_each(|d| v.extend_from_slice(&d.to_be_bytes()));
    v.extend_from_slice(data);
    v
}

#[test]
fn corpus_seeds_are_accepted() {
    for t in Target::ALL {
        let corpus = load_corpus(&corpus_dir(t)).unwrap();
        assert!(!corpus.is_empty(), "{}", t.name());
        for (name, bytes) in &corpus {
            assert_eq!(run_one(t, bytes).0, Outcome::Ok, "{}/{name}", t.name());
            assert!(bytes.len() <= 8 << 10, "{}/{name}: keep seeds small", t.name());
        }
    }
}

#[test]
fn stored_gzip_round_trips() {
    use std::io::Read;
    for n in [0usize, 1, 100, 70_000] {
        let raw: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&nw_fuzz::targets::gzip_stored(&raw)[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, raw, "{n}");
    }
}

#[test]
fn idx_empty_images_with_huge_dims() {
    // was: the `expect("length checked above")` in Tensor::from_vec (tensor.rs:62):
    // 0 images of (2^32-1) x (2^32-1) pixels is an empty file whose shape ndarray refuses
    let b = idx(0x0803, &[0, u32::MAX, u32::MAX], &[]);
    handled(Target::IdxRaw, &b);
    handled(Target::IdxGzip, &gzip(&b));
    let e = nw_data::parse_idx_images(b, nw_data::ImageLayout::Nchw, "x".as_ref()).unwrap_err();
    assert!(e.to_string().contains("invalid shape"), "{e}");
}

#[test]
fn idx_header_claims_more_than_the_file() {
    let b = idx(0x0803, &[u32::MAX, u32::MAX, u32::MAX], &[1, 2, 3]);
    refused(Target::IdxRaw, &b, "truncated");
    refused(Target::IdxGzip, &gzip(&b), "truncated");
}

#[test]
fn idx_gzip_bomb_is_not_held() {
    // a header for one 2x2 image, then 64 MiB of zeros that compress to ~64 KiB:
    // the reader stops after the 4 bytes it needs plus one
    let mut raw = idx(0x0803, &[1, 2, 2], &[0; 4]);
    raw.resize(raw.len() + (64 << 20), 0);
    let gz = gzip(&raw);
    let (r, stats) = measure(usize::MAX, || nw_data::parse_idx(gz.clone(), None, "bomb.gz".as_ref()));
    let e = r.unwrap_err().to_string();
    assert!(e.contains("trailing data"), "{e}");
    assert!(stats.peak < 4 << 20, "held {} B of a 64 MiB expansion", stats.peak);
}

#[test]
fn csv_uci_header_claims_billions() {
    // was: Vec::with_capacity(rows * cols) from the header (csv.rs:263): 42 GB, and an overflow
    handled(Target::Csv, b"4294967295,4294967295,a,b\n1,2,0\n");
    handled(Target::Csv, b"18446744073709551615,18446744073709551615,a\n1,0\n");
    // was: `cols + 1` overflowed (found by this crate's mutation test, csv #404)
    let e =
        nw_data::parse_uci_csv("4,18446744073709551615,a\n1,0\n", "x.csv".as_ref()).unwrap_err().to_string();
    assert!(e.contains("too large"), "{e}");
    let e = nw_data::parse_uci_csv("100000000,100000,a\n1,0\n", "x.csv".as_ref()).unwrap_err().to_string();
    assert!(e.contains("expected 100001 fields"), "{e}");
}

/// An nw bincode state file around `payload`, with a valid checksum.
fn nwstate(payload: &[u8]) -> Vec<u8> {
    let mut v = b"nwstate\0".to_vec();
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&fnv1a(payload).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

#[test]
fn bincode_lying_lengths_behind_a_valid_checksum() {
    // was: a name length of 2^40 allocated (state.rs:296)
    let mut p = encode(1, Enc::Varint);
    p.extend(encode(1 << 40, Enc::Varint));
    p.extend_from_slice(b"weight");
    refused(Target::Bincode, &nwstate(&p), "name length");
    // an f32 count of 2^61 (its byte count overflows)
    let mut p = encode(1, Enc::Varint);
    p.extend(encode(1, Enc::Varint));
    p.push(b'w');
    p.extend(encode(0, Enc::Varint));
    p.extend(encode(0, Enc::Varint));
    p.extend(encode(1 << 61, Enc::Varint));
    refused(Target::Bincode, &nwstate(&p), "f32 count");
    // an entry count of 2^64-1
    refused(Target::Bincode, &nwstate(&encode(u64::MAX, Enc::Varint)), "entry count");
}

#[test]
fn bincode_shape_product_overflows() {
    // was: multiply overflow in the shape's product (state.rs:367): [2^32, 2^32] with no data
    let mut p = encode(1, Enc::Varint);
    p.extend(encode(1, Enc::Varint));
    p.push(b'w');
    p.extend(encode(2, Enc::Varint));
    p.extend(encode(1 << 32, Enc::Varint));
    p.extend(encode(1 << 32, Enc::Varint));
    p.extend(encode(0, Enc::Varint));
    p.extend(encode(0, Enc::Varint));
    refused(Target::Bincode, &nwstate(&p), "does not fill");
}

#[test]
fn safetensors_hostile_header() {
    let header = br#"{"0.weight":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header);
    refused(Target::Safetensors, &b, "safetensors");
    let mut b = u64::MAX.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    refused(Target::Safetensors, &b, "safetensors");
}

#[test]
fn fixture_tensor_shape_overflows() {
    // shape [2^63, 2] wraps to 0 elements in unchecked arithmetic and matched `data: []`
    let f = br#"{"format":"nw-reference/1","kind":"layer","cases":[{"name":"x","input":{"shape":[9223372036854775808,2],"data":[]}}]}"#;
    assert_eq!(run_one(Target::Fixture, f).0, Outcome::Ok);
    let v: serde_json::Value = serde_json::from_slice(f).unwrap();
    let e = nw_parity::JsonTensor::from_value(&v["cases"][0]["input"], "input").unwrap_err();
    assert!(e.to_string().contains("overflows"), "{e}");
}

#[test]
fn tensor_shapes_that_overflow_are_errors() {
    // was: the wrapping product in Tensor::from_vec matched an empty vector
    assert!(Tensor::from_vec(vec![], &[1 << 63, 2]).is_err());
    assert!(Tensor::from_vec(vec![], &[0, usize::MAX, 2]).is_err());
    assert!(Tensor::zeros(&[2, 3]).reshape(&[1 << 63, 2, 6]).is_err());
    let (r, stats) = measure(usize::MAX, || Tensor::try_zeros(&[1 << 20, 1 << 20]));
    assert!(r.is_err());
    assert!(stats.largest < 1024, "refused before allocating (only the error's text): {stats:?}");
}

#[test]
fn huge_layers_are_refused_before_allocating() {
    // was: multiply overflows in init.rs:145 and rnn.rs:154, and 10^12-parameter
    // allocations from a stored config (`nw train --hidden 4000000000`)
    let mut rng = Rng::new(0);
    let (r, stats) = measure(usize::MAX, || Linear::try_new(1_000_000, 1_000_000, &mut rng).map(|_| ()));
    assert!(r.unwrap_err().to_string().contains("too large"));
    assert!(stats.peak < 1 << 20, "{stats:?}");
    assert!(Linear::try_new(784, 4_000_000_000, &mut rng).is_err());
    assert!(Linear::try_new(usize::MAX, usize::MAX, &mut rng).is_err());
    assert!(Linear::try_with_bias(0, usize::MAX, true, &mut rng).is_err());
    assert!(Linear::try_new(0, 3, &mut rng).is_ok(), "an empty layer is still fine");
    for cfg in [
        RnnConfig::new(28, 4_000_000_000),
        RnnConfig::new(usize::MAX, usize::MAX / 3),
        RnnConfig::new(28, 1000).num_layers(1_000_000),
    ] {
        let (r, stats) = measure(usize::MAX, || Lstm::new(cfg, &mut rng).map(|_| ()));
        assert!(r.unwrap_err().to_string().contains("parameters"), "{cfg:?}");
        assert!(stats.peak < 1 << 20, "{cfg:?}: {stats:?}");
    }
    assert!(Embedding::try_new(1 << 40, 1 << 30, &mut rng).is_err());
    assert!(nw_nn::BatchNorm1d::try_with_options(1 << 40, 1e-5, Some(0.1), true, true).is_err());
    assert!(nw_nn::BatchNorm2d::try_with_options(4, 1e-5, Some(0.1), true, true).is_ok());
    assert!(nw_nn::LayerNorm::try_with_options(&[1 << 20, 1 << 20], 1e-5, true).is_err());
    assert!(nw_nn::LayerNorm::try_with_options(&[usize::MAX, 2], 1e-5, true).is_err());
    for shape in [[usize::MAX, 2, 3, 3], [1 << 20, 1 << 20, 3, 3]] {
        assert!(nw_nn::init::default_weight(&shape, &mut rng).is_err());
    }
    assert!(
        nw_nn::Conv2d::new(1 << 20, 1 << 20, (3, 3), nw_tensor::Conv2dSpec::default(), true, &mut rng)
            .is_err()
    );
}

fn regression_input(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions").join(name))
        .unwrap()
}

#[test]
fn checkpoint_weight_average_with_inconsistent_shape() {
    // found by the checkpoint mutation test (#15299 of seed 0xc4): a stored
    // EMA tensor whose shape was set to [] behind a valid SHA-256 panicked
    // in `WeightAverage::tensors` (`expect("stored with its shape")`)
    let b = regression_input("checkpoint-average-shape.nwck");
    assert!(nw_train::Checkpoint::from_bytes(&b, "x".as_ref()).is_ok(), "the checksum is valid");
    refused(Target::Checkpoint, &b, "weight average");
}

#[test]
fn checkpoint_lying_lengths_behind_a_valid_sha256() {
    // bincode's serde decoder reserved `vec![0; n]` for a string of claimed
    // length n before reading it: a section name of 2^40 bytes
    let mut p = encode(1, Enc::Varint);
    p.extend(encode(1 << 40, Enc::Varint));
    p.extend_from_slice(b"config");
    let mut b = nw_train::checkpoint::MAGIC.to_vec();
    b.extend_from_slice(&nw_train::checkpoint::VERSION.to_le_bytes());
    b.extend_from_slice(&[0; 40]);
    b.extend_from_slice(&p);
    let b = nw_fuzz::train::reseal(b);
    refused(Target::Checkpoint, &b, "checkpoint payload");
    // a section count of 2^64-1
    let mut b2 = b[..52].to_vec();
    b2.extend(encode(u64::MAX, Enc::Varint));
    refused(Target::Checkpoint, &nw_fuzz::train::reseal(b2), "checkpoint payload");
}

#[test]
fn config_hostile_sizes_are_typed_errors() {
    // `nw train --hidden 4000000000`
    refused(Target::Config, b"[model]\nhidden = [4000000000]\n", "model.hidden[0]");
    // found by the config mutation test (#2427 and #3924 of seed 0xcf): a conv
    // padding of 2^31-1 made conv2d allocate 549 GB for the shape probe; a
    // padding of 3538 a 1.8 GB column matrix
    let layers = |pad: &str| {
        format!(
            "[model]\nlayer = [\n  {{ type = \"reshape\", shape = [1, 8, 8] }},\n  {{ type = \"conv2d\", out = 4, kernel = 3, padding = {pad} }},\n  {{ type = \"flatten\" }},\n  {{ type = \"linear\" }},\n]\n"
        )
    };
    refused(Target::Config, layers("2147483647").as_bytes(), "model.layer[1]");
    refused(Target::Config, layers("3538").as_bytes(), "elements");
    // the real build (its limit from the available memory, or nw-tensor's
    // conv geometry where that is unknown) refuses the first too, naming the layer
    let cfg = nw_train::RunConfig::from_toml(&layers("2147483647")).unwrap();
    let e = nw_train::build_run(&cfg).err().unwrap().to_string();
    assert!(
        e.contains("model.layer[1]") && (e.contains("conv2d: invalid shape") || e.contains("would pass")),
        "{e}"
    );
}

#[test]
fn config_convolutions_whose_column_buffer_passes_the_budget() {
    // found by `cargo xtask fuzz config` (AFL++, 30 min, 2026-12-03): 5 of
    // its 40 findings, configurations of a conv2d with a large kernel and padding (kernel 9,
    // padding 19 to 29 on 8x8 digits) whose shape probe allocated the
    // im2col buffer of one example (input channels x kernel area per output
    // position: 1 MiB for a 300-byte file) past the build's element budget;
    // only the output was bounded. Now the column buffer is bounded too
    // (`nw_train::layers::output_elements_bound`). The other 35 findings are
    // `config_toml_parser_peaks_are_within_its_allowance`.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/config-afl");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        let (o, stats, _) = run_one(Target::Config, &input);
        assert!(!matches!(o, Outcome::Failed(_)), "{}: {o:?}", path.display());
        assert!(stats.peak <= alloc_bound(&input), "{}: {stats:?}", path.display());
        n += 1;
    }
    assert_eq!(n, 5);
}

#[test]
fn csv_gzip_streams_that_fail_after_a_long_prefix_are_within_the_bound() {
    // found by `cargo xtask fuzz csv` (AFL++, 30 min, 2026-12-04): 68 gzip
    // inputs of 7 to 70 KB whose deflate stream decodes a long prefix (up to
    // tens of MB of text) before it fails (`invalid distance too far back`,
    // a bad checksum). The readers held the decoded prefix before they saw
    // the error, which is what the file justifies, but the harness's bound
    // counted a failed stream's decompressed length as zero. The bound now
    // counts what the decoder produced before the error
    // (`harness::alloc_bound`); every input is a typed error inside it.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/csv-afl");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        assert_eq!(&input[..2], &[0x1f, 0x8b], "{}", path.display());
        let (o, stats, _) = run_one(Target::Csv, &input);
        assert!(matches!(o, Outcome::Refused(_)), "{}: {o:?}", path.display());
        assert!(stats.peak <= alloc_bound(&input), "{}: {stats:?}", path.display());
        n += 1;
    }
    assert_eq!(n, 68);
}

#[test]
fn config_toml_parser_peaks_are_within_its_allowance() {
    // found by `cargo xtask fuzz config` (AFL++, 30 min, 2026-12-03): 35 of its
    // 40 findings, mangled TOML files of 6 to 34 KB (runs of `.`, `[`, `{`,
    // `}`, `=` or newlines around a few real keys), all invalid TOML. Their
    // peak was the `toml` crate's parser, before serde, validation or the
    // build ran: 98 to 272 bytes per byte of text (its tokens, its events,
    // and a B-tree leaf of ~1.1 KB per table it recovers), past the 64x
    // bound by 0.2% to 126%. Formatting the error adds at most 3x. The
    // parse now has its own measured allowance (`toml_allowance`, 2048 bytes
    // per byte), the build keeps the bound, and nw refuses a configuration
    // over 64 KiB before parsing it (`MAX_CONFIG_BYTES`).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/config-toml");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        let (o, stats, _) = run_one(Target::Config, &input);
        match o {
            Outcome::Refused(e) => assert!(e.contains("TOML parse error"), "{}: {e}", path.display()),
            o => panic!("{}: expected a typed error, got {o:?}", path.display()),
        }
        assert!(stats.peak <= alloc_bound(&input), "{}: {stats:?}", path.display());
        // the parse alone, counted in full, is within the bound and the allowance
        let text = std::str::from_utf8(&input).unwrap();
        let (_, raw) = measure(usize::MAX, || nw_train::RunConfig::from_toml(text).is_ok());
        assert!(raw.peak <= alloc_bound(&input) + toml_allowance(input.len()), "{}: {raw:?}", path.display());
        n += 1;
    }
    assert_eq!(n, 35);
}

#[test]
fn config_toml_parser_worst_patterns_are_within_its_allowance() {
    // the worst token patterns found (`TOML_BYTES_PER_BYTE`), 16 KB each:
    // invalid TOML at ~1184 bytes per byte (inline tables of 79 empty dotted
    // keys: a table for every byte), valid TOML at ~540 (dotted keys of 40
    // segments in arrays of tables); each parses in less than the allowance
    // per byte and is handled within the bound
    let unit = format!("{{{}}}", ".".repeat(79));
    let mut invalid = "a = [".to_string();
    while invalid.len() < 16 << 10 {
        invalid.push_str(&unit);
    }
    let key = format!("a{}=1\n", ".a".repeat(39));
    let mut valid = String::new();
    while valid.len() < 16 << 10 {
        valid.push_str("[[y]]\n");
        valid.push_str(&key);
    }
    for (name, text) in [("invalid", &invalid), ("valid", &valid)] {
        let (_, raw) = measure(usize::MAX, || nw_train::RunConfig::from_toml(text).is_ok());
        let per_byte = raw.peak as f64 / text.len() as f64;
        assert!(per_byte < TOML_BYTES_PER_BYTE as f64, "{name}: {per_byte:.0} bytes per byte");
        handled(Target::Config, text.as_bytes());
    }
    assert!(toml::from_str::<toml::Table>(&valid).is_ok(), "valid TOML");
}

#[test]
fn config_over_the_size_limit_is_refused_before_it_is_parsed() {
    // 64 KiB and one byte of dots: ~9 MB to parse, refused with the length
    // (the message and the input's own copy in the harness aside, nothing held)
    let max = nw_train::config::MAX_CONFIG_BYTES;
    let input = vec![b'.'; max + 1];
    let (o, stats, _) = run_one(Target::Config, &input);
    assert!(matches!(&o, Outcome::Refused(e) if e.contains("at most 65536 bytes")), "{o:?}");
    assert!(stats.peak < 4 << 10, "{stats:?}");
    // the limit itself is parsed (and refused as TOML), within the allowance
    let (o, _, _) = run_one(Target::Config, &input[..max]);
    assert!(matches!(&o, Outcome::Refused(e) if e.contains("TOML parse error")), "{o:?}");
}

#[test]
fn allowances_nest_and_are_taken_back() {
    use nw_fuzz::alloc::allowing;
    let (held, stats) = measure(usize::MAX, || {
        // 1500 held inside an allowance of 1000, 100 kept: 500 at the peak
        let a = allowing(1000, || {
            drop(vec![0u8; 1500]);
            vec![0u8; 100]
        });
        // 100 held before, 2000 inside nested allowances of 1000 + 500: 600
        allowing(1000, || allowing(500, || drop(vec![0u8; 2000])));
        a
    });
    assert_eq!((held.len(), stats.peak), (100, 600));
    // what is still held when an allowance ends counts in full, and a refusal
    // limit applies net of the allowance
    let (r, stats) = measure(1 << 10, || allowing(1 << 20, || vec![0u8; 1 << 19]).len());
    assert_eq!((r, stats.refused, stats.peak), (1 << 19, 0, 1 << 19));
}
