//! report.html: the document model written as one self-contained HTML page, the SVG plots inlined.

use std::fmt::Write as _;

use super::document::{Block, Inline, Table};

pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

pub(crate) fn html_inline(parts: &[Inline]) -> String {
    parts
        .iter()
        .map(|part| match part {
            Inline::Text(s) => html_escape(s),
            Inline::Code(s) => format!("<code>{}</code>", html_escape(s)),
        })
        .collect()
}

pub(crate) const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;line-height:1.5;color:#1a1a1a;background:#fff;margin:0}
main{max-width:1100px;margin:0 auto;padding:2rem 1.5rem 4rem}
h1{font-size:1.9rem;margin-bottom:.3rem}h2{margin-top:2.5rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d0d0d0;padding:.3rem .6rem}td{white-space:nowrap}th{vertical-align:bottom}
th{background:#f3f3f3}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafafa}
code{font-family:ui-monospace,'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:.9em;background:#f3f3f3;padding:0 .2em;border-radius:3px}
pre{background:#f6f6f6;border:1px solid #e0e0e0;padding:1rem;overflow-x:auto;font-size:.85rem}pre code{background:none;padding:0}
figure{margin:1.5rem 0}figure svg{width:100%;height:auto;display:block}figcaption{color:#555;font-size:.95rem;margin-top:.3rem}
";

/// Prepares an SVG file's text for inlining: drops any XML prolog or doctype (invalid inside
/// HTML) and adds a viewBox when missing, so the picture scales to the page width instead of
/// being cropped.
pub fn inline_svg(svg: &str) -> String {
    let mut body = svg.trim_start();
    while body.starts_with("<?") || body.starts_with("<!") {
        match body.find('>') {
            Some(end) => body = body[end + 1..].trim_start(),
            None => break,
        }
    }
    let Some(tag_end) = body.find('>') else {
        return body.to_string();
    };
    let tag = &body[..tag_end];
    if !tag.starts_with("<svg") || tag.contains("viewBox") {
        return body.to_string();
    }
    let attribute = |name: &str| {
        let key = format!(" {name}=\"");
        tag.find(&key).and_then(|i| {
            let rest = &tag[i + key.len()..];
            rest.find('"').map(|j| rest[..j].to_string())
        })
    };
    match (attribute("width"), attribute("height")) {
        (Some(w), Some(h)) => format!("<svg viewBox=\"0 0 {w} {h}\"{}", &body[4..]),
        _ => body.to_string(),
    }
}

/// The self-contained HTML page. `svgs` maps each figure stem to the text of its SVG file.
pub fn to_html(title: &str, blocks: &[Block], svgs: &[(String, String)]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<main>\n",
        html_escape(title)
    );
    for block in blocks {
        match block {
            Block::Heading(level, title) => {
                let _ = writeln!(out, "<h{level}>{}</h{level}>", html_escape(title));
            }
            Block::Paragraph(parts) => {
                let _ = writeln!(out, "<p>{}</p>", html_inline(parts));
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(out, "<li>{}</li>", html_inline(item));
                }
                out.push_str("</ul>\n");
            }
            Block::Table(table) => html_table(&mut out, table),
            Block::Code(lang, body) => {
                let _ = writeln!(out, "<pre><code class=\"language-{}\">{}</code></pre>", html_escape(lang), html_escape(body));
            }
            Block::Figure { stem, caption } => {
                out.push_str("<figure>\n");
                match svgs.iter().find(|(s, _)| s == stem) {
                    Some((_, svg)) => {
                        out.push_str(inline_svg(svg).trim_end());
                        out.push('\n');
                    }
                    None => {
                        let _ = writeln!(out, "<p>(plot {} missing)</p>", html_escape(stem));
                    }
                }
                let _ = writeln!(out, "<figcaption>{}</figcaption>\n</figure>", html_escape(caption));
            }
        }
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

pub(crate) fn html_table(out: &mut String, table: &Table) {
    let class = |i: usize| {
        if table.right_aligned.get(i).copied().unwrap_or(false) {
            " class=\"num\""
        } else {
            ""
        }
    };
    out.push_str("<table>\n<thead><tr>");
    for (i, h) in table.header.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", class(i), html_escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let _ = write!(out, "<td{}>{}</td>", class(i), html_inline(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::document::{code, text};
    use crate::report::markdown::{md_escape, md_inline, to_markdown};

    #[test]
    fn text_is_escaped_for_each_format() {
        assert_eq!(md_escape("a_b|c*<d>"), "a\\_b\\|c\\*\\<d\\>");
        assert_eq!(html_escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(md_inline(&code("a|b")), "`a\\|b`");
        assert_eq!(md_inline(&code("a`b")), "`` a`b ``");
    }

    #[test]
    fn inline_svg_drops_the_prolog_and_scales() {
        let svg = "<?xml version=\"1.0\"?>\n<!DOCTYPE svg>\n<svg width=\"10\" height=\"20\" xmlns=\"http://www.w3.org/2000/svg\"></svg>";
        assert_eq!(inline_svg(svg), "<svg viewBox=\"0 0 10 20\" width=\"10\" height=\"20\" xmlns=\"http://www.w3.org/2000/svg\"></svg>");
        let with_view_box = "<svg width=\"1\" height=\"1\" viewBox=\"0 0 1 1\"></svg>";
        assert_eq!(inline_svg(with_view_box), with_view_box);
    }

    #[test]
    fn tables_render_in_both_formats() {
        let table = Table { header: vec!["time".into(), "mean".into()], rows: vec![vec![text("1 s"), text("95.20")]], right_aligned: vec![false, true] };
        let md = to_markdown(&[Block::Table(table.clone())]);
        assert_eq!(md, "| time | mean |\n| --- | ---: |\n| 1 s | 95.20 |\n");
        let html = to_html("t", &[Block::Table(table)], &[]);
        assert!(html.contains("<tr><td>1 s</td><td class=\"num\">95.20</td></tr>"), "{html}");
    }
}
