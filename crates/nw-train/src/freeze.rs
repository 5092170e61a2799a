//! Frozen parameters (`train.freeze`, `nw train --freeze`): parameters picked
//! by PyTorch state_dict name or by a simple glob are not given to the
//! optimizer (no update, no optimizer state) and their gradients are dropped
//! before clipping, as torch's `requires_grad_(False)` leaves them out;
//! gradients still flow through them to earlier layers.
//!
//! A pattern is a name where `*` matches any run of characters (dots too)
//! and `?` any one character; everything else matches itself.
//!
//! ```
//! use nw_train::freeze::glob_match;
//! assert!(glob_match("0.*", "0.weight"));
//! assert!(glob_match("?.bias", "2.bias"));
//! assert!(!glob_match("0.*", "10.weight"));
//! ```

use std::collections::BTreeSet;

use crate::error::{Result, TrainError};

/// Whether `name` matches `pattern` (`*`: any run of characters, `?`: one).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matcher with backtracking to the last `*`.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

/// The names among `names` that `patterns` pick. A pattern that matches no
/// name, or patterns that pick every name, are configuration errors.
pub fn frozen_names(names: &[String], patterns: &[String]) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for pat in patterns {
        let hits: Vec<&String> = names.iter().filter(|n| glob_match(pat, n)).collect();
        if hits.is_empty() {
            return Err(TrainError::Config(format!(
                "train.freeze: {pat:?} matches no parameter (the model has {})",
                names.join(", ")
            )));
        }
        out.extend(hits.into_iter().cloned());
    }
    if !names.is_empty() && out.len() == names.len() {
        return Err(TrainError::Config(format!(
            "train.freeze = {patterns:?} freezes every parameter: nothing would train"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shell_patterns_over_whole_names() {
        assert!(glob_match("0.weight", "0.weight"));
        assert!(!glob_match("0.weight", "0.weight2"));
        assert!(glob_match("*", "3.bias"));
        assert!(glob_match("*.bias", "3.bias"));
        assert!(glob_match("*.b*s", "12.bias"));
        assert!(!glob_match("*.bias", "3.weight"));
        assert!(glob_match("?.*", "1.running_mean"));
        assert!(!glob_match("?.*", "11.weight"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }

    #[test]
    fn unmatched_and_total_freezes_are_errors() {
        let names: Vec<String> = ["0.weight", "0.bias", "2.weight"].iter().map(|s| s.to_string()).collect();
        let f = frozen_names(&names, &["0.*".into()]).unwrap();
        assert_eq!(f.into_iter().collect::<Vec<_>>(), ["0.bias", "0.weight"]);
        let e = frozen_names(&names, &["5.*".into()]).unwrap_err().to_string();
        assert!(e.contains("\"5.*\"") && e.contains("matches no parameter"), "{e}");
        let e = frozen_names(&names, &["*".into()]).unwrap_err().to_string();
        assert!(e.contains("every parameter"), "{e}");
    }
}
