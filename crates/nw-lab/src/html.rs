//! One self-contained HTML page: every table, every plot inlined as SVG,
//! heat maps drawn as SVG rectangles, PNG images as `data:` URIs. No
//! network, no script.

use std::path::Path;

use crate::error::{Result, io};
use crate::measure::{HIST_BINS, HIST_HI, HIST_LO};
use crate::report::{Heatmap, Report, Table};

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A minimal inline rendering of the markdown used in reports: `**bold**` and `` `code` ``.
pub fn inline(s: &str) -> String {
    let mut out = String::new();
    let e = esc(s);
    let mut bold = false;
    let mut code = false;
    let mut rest = e.as_str();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            out += if bold { "</b>" } else { "<b>" };
            bold = !bold;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('`') {
            out += if code { "</code>" } else { "<code>" };
            code = !code;
            rest = r;
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if bold {
        out += "</b>";
    }
    if code {
        out += "</code>";
    }
    out
}

/// A table as HTML.
pub fn table(t: &Table) -> String {
    let mut s = String::from("<table><thead><tr>");
    for h in &t.header {
        s += &format!("<th>{}</th>", esc(h));
    }
    s += "</tr></thead><tbody>";
    for r in &t.rows {
        s += "<tr>";
        for c in r {
            let class = if c.starts_with("disagrees") {
                " class=\"no\""
            } else if c.starts_with("agrees") {
                " class=\"yes\""
            } else {
                ""
            };
            s += &format!("<td{class}>{}</td>", esc(c));
        }
        s += "</tr>";
    }
    s + "</tbody></table>\n"
}

/// The contents of an SVG file, ready to inline (XML declaration removed).
pub fn inline_svg(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let start = text.find("<svg").unwrap_or(0);
    Ok(format!("<figure class=\"plot\">{}</figure>\n", &text[start..]))
}

/// Standard base64 of `bytes` (for `data:` URIs).
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// A heat map as SVG: x = log10 |update| bins, y = recorded steps (time
/// downwards), colour = fraction of weights in the bin.
pub fn heatmap_svg(h: &Heatmap) -> String {
    let (cw, ch) = (14.0, (360.0 / h.rows.len().max(1) as f64).clamp(3.0, 16.0));
    let (left, top) = (70.0, 30.0);
    let width = left + cw * HIST_BINS as f64 + 20.0;
    let height = top + ch * h.rows.len() as f64 + 40.0;
    let max = h.rows.iter().flat_map(|(_, r)| r.iter().copied()).fold(0.0f64, f64::max).max(1e-12);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\
<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
<text x=\"{left}\" y=\"18\" font-family=\"sans-serif\" font-size=\"13\">{}</text>",
        esc(&h.title)
    );
    for (r, (step, bins)) in h.rows.iter().enumerate() {
        let y = top + ch * r as f64;
        if r % (h.rows.len() / 8).max(1) == 0 {
            s += &format!(
                "<text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"10\" text-anchor=\"end\">{step}</text>",
                left - 4.0,
                y + ch
            );
        }
        for (b, v) in bins.iter().enumerate() {
            // white -> dark blue by the square root of the fraction
            let t = (v / max).sqrt();
            let c = |lo: f64, hi: f64| (lo + (hi - lo) * t).round() as u8;
            s += &format!(
                "<rect x=\"{}\" y=\"{y}\" width=\"{cw}\" height=\"{ch}\" fill=\"rgb({},{},{})\"/>",
                left + cw * b as f64,
                c(255.0, 8.0),
                c(255.0, 48.0),
                c(255.0, 107.0)
            );
        }
    }
    let yb = top + ch * h.rows.len() as f64 + 14.0;
    for k in (HIST_LO as i32..=HIST_HI as i32).step_by(2) {
        let x = left + cw * HIST_BINS as f64 * (k as f64 - HIST_LO) / (HIST_HI - HIST_LO);
        s += &format!(
            "<text x=\"{x}\" y=\"{yb}\" font-family=\"sans-serif\" font-size=\"10\" text-anchor=\"middle\">1e{k}</text>"
        );
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"11\" text-anchor=\"middle\">|update| (bins of log10); rows: step</text></svg>",
        left + cw * HIST_BINS as f64 / 2.0,
        yb + 16.0
    );
    format!("<figure class=\"plot heat\">{s}</figure>\n")
}

/// One report as an HTML section.
pub fn section(r: &Report) -> Result<String> {
    let mut s = format!(
        "<section id=\"{}\"><h2>{}</h2><p>{}</p><h3>Setup</h3><ul>",
        esc(&r.name),
        esc(&r.title),
        inline(&r.question)
    );
    for b in &r.setup {
        s += &format!("<li>{}</li>", inline(b));
    }
    s += &format!(
        "<li>seeds: {}</li></ul>",
        r.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    );
    s += "<h3>The article's figures beside the measurements</h3>";
    s += &table(&r.claims);
    s += "<h3>All results (mean ± spread over seeds)</h3>";
    s += &table(&r.results);
    for (t, tb) in &r.extra {
        s += &format!("<h3>{}</h3>{}", esc(t), table(tb));
    }
    s += "<h3>What we conclude</h3><ul>";
    for c in &r.conclusions {
        s += &format!("<li>{}</li>", inline(c));
    }
    s += "</ul><div class=\"plots\">";
    for p in &r.plots {
        s += &inline_svg(&r.dir.join(format!("{}.svg", p.stem)))?;
    }
    for h in &r.heatmaps {
        s += &heatmap_svg(h);
    }
    for (file, caption) in &r.images {
        let p = r.dir.join(file);
        let bytes = std::fs::read(&p).map_err(io(&p))?;
        s += &format!(
            "<figure class=\"plot\"><img alt=\"{}\" src=\"data:image/png;base64,{}\"/><figcaption>{}</figcaption></figure>",
            esc(caption),
            base64(&bytes),
            esc(caption)
        );
    }
    s += "</div></section>\n";
    Ok(s)
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1700px;margin:1em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px;text-align:left}\
th{background:#eee}td.no{background:#fde2e2}td.yes{background:#e2f5e2}.plots{display:flex;flex-wrap:wrap;gap:8px}\
figure.plot{margin:0;border:1px solid #ddd}figure.plot svg{width:560px;height:auto;display:block}\
figure.heat svg{width:auto}section{border-top:2px solid #888;margin-top:2em}nav a{margin-right:1em}\
pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap}";

/// A whole page: title, an introduction (`<p>` paragraphs), a table of
/// contents over `sections` (id, title) and their HTML.
pub fn page(title: &str, intro: &[String], sections: &[(String, String, String)]) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        esc(title),
        esc(title)
    );
    for p in intro {
        s += &format!("<p>{}</p>", inline(p));
    }
    s += "<nav>";
    for (id, t, _) in sections {
        s += &format!("<a href=\"#{}\">{}</a>", esc(id), esc(t));
    }
    s += "</nav>";
    for (_, _, html) in sections {
        s += html;
    }
    s + "</body></html>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_examples() {
        // RFC 4648 section 10 test vectors
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn inline_markup() {
        assert_eq!(inline("a **b** `c<d`"), "a <b>b</b> <code>c&lt;d</code>");
    }
}
