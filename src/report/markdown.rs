//! report.md: the document model written as Markdown.

use std::fmt::Write as _;

use super::document::{Block, Inline};

/// Escapes characters that Markdown would read as markup, so names and labels print literally.
pub(crate) fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn md_inline(parts: &[Inline]) -> String {
    parts
        .iter()
        .map(|part| match part {
            Inline::Text(s) => md_escape(s),
            Inline::Code(s) => {
                // A code span cannot hold its own delimiter; a longer fence can. Pipes still
                // need escaping inside tables (GitHub's rule), harmless elsewhere.
                let fence = if s.contains('`') { "``" } else { "`" };
                let body = s.replace('|', "\\|").replace('\n', " ");
                if fence.len() > 1 {
                    format!("{fence} {body} {fence}")
                } else {
                    format!("`{body}`")
                }
            }
        })
        .collect()
}

pub fn to_markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        match block {
            Block::Heading(level, title) => {
                let _ = writeln!(out, "{} {}", "#".repeat(usize::from(*level)), md_escape(title));
            }
            Block::Paragraph(parts) => {
                let _ = writeln!(out, "{}", md_inline(parts));
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "- {}", md_inline(item));
                }
            }
            Block::Table(table) => {
                let cell = |s: &str| {
                    if s.is_empty() {
                        " ".to_string()
                    } else {
                        s.to_string()
                    }
                };
                let header: Vec<String> = table.header.iter().map(|h| cell(&md_escape(h))).collect();
                let _ = writeln!(out, "| {} |", header.join(" | "));
                let rule: Vec<&str> = table.right_aligned.iter().map(|r| if *r { "---:" } else { "---" }).collect();
                let _ = writeln!(out, "| {} |", rule.join(" | "));
                for row in &table.rows {
                    let cells: Vec<String> = row.iter().map(|c| cell(&md_inline(c))).collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
            }
            Block::Code(lang, body) => {
                // A fence longer than any backtick run inside the body.
                let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
                let fence = "`".repeat(longest.max(2) + 1);
                let _ = writeln!(out, "{fence}{lang}\n{body}\n{fence}");
            }
            Block::Figure { stem, caption } => {
                let _ = writeln!(out, "![{}]({stem}.png)\n\n*{}* ([SVG]({stem}.svg))", md_escape(caption), md_escape(caption));
            }
        }
        out.push('\n');
    }
    // One trailing newline, not two.
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_fence_outgrows_backticks_in_the_body() {
        let md = to_markdown(&[Block::Code("json".into(), "\"```\"".into())]);
        assert!(md.starts_with("````json\n"), "{md}");
    }
}
