//! The seeded mutation engine: from valid seed files, the inputs the
//! mutation tests feed the readers.
//!
//! A [`Seed`] is a valid file plus what is known of its structure: its
//! length, count and dimension [`Field`]s and its sections (byte ranges
//! that may be duplicated, deleted or swapped). [`Mutations`] yields, in a
//! fixed order for a given seed value:
//!
//! 1. every truncation of every seed (lengths `0..len`);
//! 2. every field of every seed set to each hostile value (0, 1, 2^31-1,
//!    2^32-1, 2^64-1, in the field's own encoding, the wider ones cut to
//!    the field's width);
//! 3. every section duplicated, deleted, and swapped with each later one;
//! 4. then random stacks of 1 to 4 operators (bit flips, byte writes,
//!    hostile or random field values, inserted and deleted ranges,
//!    section moves, truncation, splicing with another seed) until the
//!    requested count.
//!
//! Each input carries a description naming its seed and operators, so a
//! failure can be reproduced from the report alone.

use std::ops::Range;

/// How a field is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    /// One byte.
    U8,
    /// Big-endian u32 (IDX dimensions).
    U32Be,
    /// Little-endian u32.
    U32Le,
    /// Little-endian u64 (safetensors' header length).
    U64Le,
    /// bincode 2 varint: one byte `< 251`, or 251/252/253 then LE u16/u32/u64.
    Varint,
    /// Decimal digits in text (CSV headers, JSON numbers).
    Text,
}

/// A length, count or dimension in a seed: `len` bytes at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Byte offset.
    pub at: usize,
    /// Byte length as stored in the seed.
    pub len: usize,
    /// Encoding.
    pub enc: Enc,
}

/// A valid file and its known structure.
#[derive(Debug, Clone, Default)]
pub struct Seed {
    /// The seed's name (its corpus file name).
    pub name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Its length, count and dimension fields.
    pub fields: Vec<Field>,
    /// Sections that may be duplicated, deleted or reordered.
    pub sections: Vec<Range<usize>>,
}

/// The hostile values every field is set to.
pub const HOSTILE: [u64; 5] = [0, 1, (1 << 31) - 1, (1 << 32) - 1, u64::MAX];

/// A mutated input.
#[derive(Debug, Clone)]
pub struct Input {
    /// Position in the sequence (reproduces it with the same seeds and seed value).
    pub index: usize,
    /// The seed it came from.
    pub seed: usize,
    /// What was done to it.
    pub desc: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// splitmix64: a small, fixed generator for the random phase.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n == 0`; modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }
}

/// `v` encoded as `enc` (fixed widths keep their low bytes).
pub fn encode(v: u64, enc: Enc) -> Vec<u8> {
    match enc {
        Enc::U8 => vec![v as u8],
        Enc::U32Be => (v as u32).to_be_bytes().to_vec(),
        Enc::U32Le => (v as u32).to_le_bytes().to_vec(),
        Enc::U64Le => v.to_le_bytes().to_vec(),
        Enc::Varint => match v {
            0..=250 => vec![v as u8],
            251..=0xffff => [&[251u8][..], &(v as u16).to_le_bytes()].concat(),
            0x1_0000..=0xffff_ffff => [&[252u8][..], &(v as u32).to_le_bytes()].concat(),
            _ => [&[253u8][..], &v.to_le_bytes()].concat(),
        },
        Enc::Text => v.to_string().into_bytes(),
    }
}

fn set_field(bytes: &[u8], f: Field, v: u64) -> Vec<u8> {
    let mut out = bytes[..f.at].to_vec();
    out.extend_from_slice(&encode(v, f.enc));
    out.extend_from_slice(&bytes[f.at + f.len..]);
    out
}

fn duplicate(bytes: &[u8], r: &Range<usize>) -> Vec<u8> {
    let mut out = bytes[..r.end].to_vec();
    out.extend_from_slice(&bytes[r.clone()]);
    out.extend_from_slice(&bytes[r.end..]);
    out
}

fn delete(bytes: &[u8], r: &Range<usize>) -> Vec<u8> {
    [&bytes[..r.start], &bytes[r.end..]].concat()
}

/// Swaps two disjoint sections (`a` before `b`).
fn swap(bytes: &[u8], a: &Range<usize>, b: &Range<usize>) -> Vec<u8> {
    let (a, b) = if a.start <= b.start { (a, b) } else { (b, a) };
    if a.end > b.start {
        return bytes.to_vec();
    }
    [&bytes[..a.start], &bytes[b.clone()], &bytes[a.end..b.start], &bytes[a.clone()], &bytes[b.end..]]
        .concat()
}

/// Finds every run of ASCII digits in `bytes[range]` as a [`Enc::Text`] field.
pub fn digit_fields(bytes: &[u8], range: Range<usize>) -> Vec<Field> {
    let mut out = Vec::new();
    let mut i = range.start;
    while i < range.end {
        if bytes[i].is_ascii_digit() {
            let s = i;
            while i < range.end && bytes[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Field { at: s, len: i - s, enc: Enc::Text });
        } else {
            i += 1;
        }
    }
    out
}

/// The line ranges of a text (each with its newline).
pub fn line_sections(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut s = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            out.push(s..i + 1);
            s = i + 1;
        }
    }
    if s < bytes.len() {
        out.push(s..bytes.len());
    }
    out
}

/// The member (or element) ranges of the JSON object or array that opens at
/// `open` (`{` or `[`), without surrounding whitespace and commas; empty
/// when `open` is not a container or it does not close.
pub fn json_members(bytes: &[u8], open: usize) -> Vec<Range<usize>> {
    if !matches!(bytes.get(open), Some(b'{' | b'[')) {
        return Vec::new();
    }
    json_container(bytes, open).map(|(members, _)| members).unwrap_or_default()
}

/// One pass over the JSON object or array at the first non-whitespace byte
/// from `from`: its top-level member ranges (as [`json_members`]) and the
/// offset just past its closing bracket; `None` when no container starts
/// there or it does not close. Strings and escapes are skipped, brackets
/// are not matched by kind (a mutated input may mix them).
pub fn json_container(bytes: &[u8], from: usize) -> Option<(Vec<Range<usize>>, usize)> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    let mut members = Vec::new();
    let mut start = from;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            _ if depth == 0 && b.is_ascii_whitespace() => {}
            b'{' | b'[' => {
                if depth == 0 {
                    start = i + 1;
                }
                depth += 1;
            }
            _ if depth == 0 => return None,
            b'"' => in_str = true,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    push_trimmed(bytes, start..i, &mut members);
                    return Some((members, i + 1));
                }
            }
            b',' if depth == 1 => {
                push_trimmed(bytes, start..i, &mut members);
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

fn push_trimmed(bytes: &[u8], mut r: Range<usize>, out: &mut Vec<Range<usize>>) {
    while r.start < r.end && bytes[r.start].is_ascii_whitespace() {
        r.start += 1;
    }
    while r.end > r.start && bytes[r.end - 1].is_ascii_whitespace() {
        r.end -= 1;
    }
    if r.start < r.end {
        out.push(r);
    }
}

/// The mutated inputs of a set of seeds (see the module docs).
pub struct Mutations<'a> {
    seeds: &'a [Seed],
    plan: Vec<(usize, Op)>,
    next: usize,
    total: usize,
    seed: u64,
}

#[derive(Debug, Clone)]
enum Op {
    Truncate(usize),
    Field(usize, u64),
    Duplicate(usize),
    Delete(usize),
    Swap(usize, usize),
}

impl<'a> Mutations<'a> {
    /// `total` inputs from `seeds`, the random phase drawn from `seed`.
    pub fn new(seeds: &'a [Seed], total: usize, seed: u64) -> Self {
        let mut plan = Vec::new();
        for (s, sd) in seeds.iter().enumerate() {
            plan.extend((0..sd.bytes.len()).map(|n| (s, Op::Truncate(n))));
            for f in 0..sd.fields.len() {
                plan.extend(HOSTILE.iter().map(|&v| (s, Op::Field(f, v))));
            }
            for a in 0..sd.sections.len() {
                plan.push((s, Op::Duplicate(a)));
                plan.push((s, Op::Delete(a)));
                // swaps with at most 16 later sections, so large seeds stay bounded
                plan.extend((a + 1..sd.sections.len()).take(16).map(|b| (s, Op::Swap(a, b))));
            }
        }
        Mutations { seeds, plan, next: 0, total, seed }
    }

    /// How many of the inputs are enumerated (truncations, fields, sections)
    /// rather than random.
    pub fn enumerated(&self) -> usize {
        self.plan.len().min(self.total)
    }

    fn apply(&self, s: usize, op: &Op) -> (String, Vec<u8>) {
        let sd = &self.seeds[s];
        let b = &sd.bytes;
        match *op {
            Op::Truncate(n) => (format!("truncate to {n}"), b[..n].to_vec()),
            Op::Field(f, v) => {
                let fl = sd.fields[f];
                (format!("field@{} ({:?}) = {v}", fl.at, fl.enc), set_field(b, fl, v))
            }
            Op::Duplicate(a) => {
                (format!("duplicate section {:?}", sd.sections[a]), duplicate(b, &sd.sections[a]))
            }
            Op::Delete(a) => (format!("delete section {:?}", sd.sections[a]), delete(b, &sd.sections[a])),
            Op::Swap(a, c) => (
                format!("swap sections {:?} and {:?}", sd.sections[a], sd.sections[c]),
                swap(b, &sd.sections[a], &sd.sections[c]),
            ),
        }
    }

    /// A random stack of operators on one seed; structure-aware operators
    /// use the seed's fields and sections while the bytes still line up.
    fn random(&self, index: usize) -> (usize, String, Vec<u8>) {
        let mut rng = SplitMix::new(self.seed ^ (index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let s = rng.below(self.seeds.len());
        let sd = &self.seeds[s];
        let mut b = sd.bytes.clone();
        let mut aligned = true; // fields and sections still at their offsets
        let mut desc = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let kind = rng.below(10);
            match kind {
                0..=2 if !b.is_empty() => {
                    let flips = 1 + rng.below(8);
                    for _ in 0..flips {
                        let i = rng.below(b.len());
                        b[i] ^= 1 << rng.below(8);
                    }
                    desc.push(format!("{flips} bit flips"));
                }
                3 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b[i] = [0u8, 0xff, 0x7f, 0x80, b'0', b'9', b',', b'"', b'{', b'\n'][rng.below(10)];
                    desc.push(format!("byte {i} = {}", b[i]));
                }
                4 | 5 if aligned && !sd.fields.is_empty() => {
                    let f = sd.fields[rng.below(sd.fields.len())];
                    let v = if rng.below(2) == 0 {
                        HOSTILE[rng.below(HOSTILE.len())]
                    } else {
                        rng.next_u64() >> rng.below(64)
                    };
                    if f.at + f.len <= b.len() {
                        b = set_field(&b, f, v);
                        aligned = encode(v, f.enc).len() == f.len;
                        desc.push(format!("field@{} = {v}", f.at));
                    }
                }
                6 if aligned && !sd.sections.is_empty() => {
                    let a = sd.sections[rng.below(sd.sections.len())].clone();
                    let c = sd.sections[rng.below(sd.sections.len())].clone();
                    if a.end <= b.len() && c.end <= b.len() {
                        b = match rng.below(3) {
                            0 => duplicate(&b, &a),
                            1 => delete(&b, &a),
                            _ => swap(&b, &a, &c),
                        };
                        aligned = false;
                        desc.push(format!("section move {a:?} {c:?}"));
                    }
                }
                7 => {
                    let i = rng.below(b.len() + 1);
                    let n = 1 + rng.below(16);
                    let ins: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                    b.splice(i..i, ins);
                    aligned = false;
                    desc.push(format!("insert {n} at {i}"));
                }
                8 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    let n = 1 + rng.below(16.min(b.len() - i));
                    b.drain(i..i + n);
                    aligned = false;
                    desc.push(format!("delete {n} at {i}"));
                }
                _ => {
                    if rng.below(2) == 0 || self.seeds.len() == 1 {
                        let n = rng.below(b.len() + 1);
                        b.truncate(n);
                        desc.push(format!("truncate to {n}"));
                    } else {
                        let o = &self.seeds[rng.below(self.seeds.len())].bytes;
                        let (i, j) = (rng.below(b.len() + 1), rng.below(o.len() + 1));
                        b.truncate(i);
                        b.extend_from_slice(&o[j..]);
                        desc.push(format!("splice at {i} with another seed from {j}"));
                    }
                    aligned = false;
                }
            }
        }
        (s, format!("random #{index}: {}", desc.join(", ")), b)
    }
}

impl Iterator for Mutations<'_> {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        if self.next >= self.total || self.seeds.is_empty() {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let (seed, desc, bytes) = match self.plan.get(index) {
            Some((s, op)) => {
                let (d, b) = self.apply(*s, op);
                (*s, d, b)
            }
            None => self.random(index),
        };
        Some(Input { index, seed, desc: format!("{}: {desc}", self.seeds[seed].name), bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_and_sections() {
        assert_eq!(encode(250, Enc::Varint), vec![250]);
        assert_eq!(encode(251, Enc::Varint), vec![251, 251, 0]);
        assert_eq!(encode(u64::MAX, Enc::Varint).len(), 9);
        assert_eq!(encode(1, Enc::U32Be), vec![0, 0, 0, 1]);
        let j = br#"{"a": [1, 2], "b": {"c": "x,}"}}"#;
        let m = json_members(j, 0);
        assert_eq!(
            m.iter().map(|r| &j[r.clone()]).collect::<Vec<_>>(),
            vec![&br#""a": [1, 2]"#[..], br#""b": {"c": "x,}"}"#]
        );
        assert_eq!(digit_fields(b"a12b3", 0..5).len(), 2);
        assert_eq!(swap(b"AAxBB", &(0..2), &(3..5)), b"BBxAA");
        let seeds = [Seed { name: "s".into(), bytes: b"abc".to_vec(), ..Seed::default() }];
        let v: Vec<Input> = Mutations::new(&seeds, 10, 1).collect();
        assert_eq!(v.len(), 10);
        assert_eq!(v[0].bytes, b"");
        assert_eq!(v[2].bytes, b"ab");
        // the same seed value gives the same inputs
        let w: Vec<Input> = Mutations::new(&seeds, 10, 1).collect();
        assert!(v.iter().zip(&w).all(|(a, b)| a.bytes == b.bytes));
    }

    #[test]
    fn a_container_ends_after_its_bracket_and_anything_else_is_none() {
        let j = b"12345678  {\"a\": [1, \"]\"], \"b\": {}} tail";
        let (members, end) = json_container(j, 8).unwrap();
        assert_eq!(&j[..end], &b"12345678  {\"a\": [1, \"]\"], \"b\": {}}"[..]);
        let m: Vec<&[u8]> = members.iter().map(|r| &j[r.clone()]).collect();
        assert_eq!(m, [&b"\"a\": [1, \"]\"]"[..], &b"\"b\": {}"[..]]);
        assert_eq!(json_container(b"  x{}", 0), None);
        assert_eq!(json_container(b"{\"open", 0), None);
        assert_eq!(json_container(b"}", 0), None);
        // json_members wants the bracket at the offset itself
        assert!(json_members(b" {}", 0).is_empty());
    }
}
