//! The original's plain text tables (its `columns.Render`): columns two
//! spaces apart, each as wide as its widest cell but at most 40, the widest
//! narrowed one at a time until the table fits the width, cells cut with `…`,
//! the last column not padded. Shared by `ps`, `ps stop` and the queries'
//! `-o text`.

use std::fmt::Write as _;
use unicode_width::UnicodeWidthChar;

/// Widest a column gets.
const MAX_COLUMN_WIDTH: usize = 40;

/// Renders `headers` and `rows` in `available` columns of text.
pub fn render(headers: &[&str], rows: &[Vec<String>], available: usize) -> String {
    let available = if available == 0 { 120 } else { available };
    let widths = column_widths(headers, rows, available);
    let mut out = String::new();
    let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&headers).chain(rows) {
        for (i, &width) in widths.iter().enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let cell = truncate(&single_line(row.get(i).map_or("", String::as_str)), width);
            out.push_str(&cell);
            if i + 1 < widths.len() {
                let pad = width.saturating_sub(display_width(&cell));
                let _ = write!(out, "{:pad$}", "");
            }
        }
        out.push('\n');
    }
    out
}

fn column_widths(headers: &[&str], rows: &[Vec<String>], available: usize) -> Vec<usize> {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|h| display_width(&single_line(h)).clamp(1, MAX_COLUMN_WIDTH))
        .collect();
    let minimums: Vec<usize> = widths.iter().map(|&w| w.min(3)).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(display_width(&single_line(cell)).min(MAX_COLUMN_WIDTH));
        }
    }
    let table_width =
        |widths: &[usize]| 2 * widths.len().saturating_sub(1) + widths.iter().sum::<usize>();
    while table_width(&widths) > available {
        // The first of the widest columns that can still shrink.
        let widest = (0..widths.len()).filter(|&i| widths[i] > minimums[i]).fold(
            None,
            |best: Option<usize>, i| match best {
                Some(b) if widths[b] >= widths[i] => Some(b),
                _ => Some(i),
            },
        );
        let Some(widest) = widest else { break };
        widths[widest] -= 1;
    }
    widths
}

/// Go's `strings.Join(strings.Fields(s), " ")`.
fn single_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Cuts `s` to `width` columns, ending with `…` when cut.
fn truncate(s: &str, width: usize) -> String {
    if width == 0 || display_width(s) <= width {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        if used + w > width - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

fn display_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// Terminal columns of a character, as go-runewidth counts them for the
/// original: 2 for East Asian wide and fullwidth characters and most emoji,
/// 0 for combining marks and control characters, 1 otherwise.
fn char_width(c: char) -> usize {
    UnicodeWidthChar::width(c).unwrap_or(0)
}

/// Columns of the terminal on stdout, or 120 when stdout is not one.
pub fn terminal_width() -> usize {
    match terminal_size::terminal_size_of(std::io::stdout()) {
        Some((terminal_size::Width(columns), _)) if columns > 0 => usize::from(columns),
        _ => 120,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|c| (*c).to_owned()).collect())
            .collect()
    }

    #[test]
    fn aligns_with_two_spaces_and_leaves_the_last_column_unpadded() {
        let table = render(
            &["PID", "ACTION", "SUCCESS"],
            &rows(&[&["12345", "stopped", "true"], &["7", "inspect", "false"]]),
            120,
        );
        assert_eq!(
            table,
            "PID    ACTION   SUCCESS\n\
             12345  stopped  true\n\
             7      inspect  false\n"
        );
    }

    #[test]
    fn caps_columns_at_40_and_shrinks_the_widest_to_fit() {
        let long = "x".repeat(60);
        let table = render(&["A", "B"], &rows(&[&[&long, "tail  with\tspaces"]]), 120);
        assert_eq!(
            table,
            format!(
                "A{}  B\n{}…  tail with spaces\n",
                " ".repeat(39),
                "x".repeat(39)
            )
        );
        // 30 columns: the 40-wide column gives way first, down to what fits.
        let table = render(&["A", "B"], &rows(&[&[&long, "0123456789"]]), 30);
        assert_eq!(
            table,
            format!("A{}  B\n{}…  0123456789\n", " ".repeat(17), "x".repeat(17))
        );
        // Never below three columns (or the header's width if smaller).
        let table = render(&["PID", "X"], &rows(&[&["123456", "abcdef"]]), 4);
        assert_eq!(table, "PID  X\n12…  …\n");
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let table = render(&["N", "M"], &rows(&[&["日本語", "x"]]), 120);
        assert_eq!(table, "N       M\n日本語  x\n");
        assert_eq!(truncate("日本語です", 5), "日本…");
        // Combining marks and control characters take none, fullwidth
        // forms and emoji two, as go-runewidth counts them.
        assert_eq!(display_width("e\u{301}\u{1}"), 1);
        assert_eq!(display_width("Ａ😀"), 4);
        assert_eq!(truncate("ab\u{301}cdef", 4), "ab\u{301}c…");
    }
}
