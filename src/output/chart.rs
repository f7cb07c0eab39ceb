//! A horizontal bar chart for the terminal: one line per bucket, its label,
//! a bar in eighths of a cell (`▏`…`█`) scaled so that the largest count
//! fills the room the width leaves, and the count.
//!
//! The width is the caller's ([`width`]: `COLUMNS` if set, else the
//! terminal's, else 80); what the buckets are is the summary's.

use std::fmt::Write as _;

/// Width when neither `COLUMNS` nor a terminal says.
pub const DEFAULT_WIDTH: usize = 80;
/// The narrowest bar area: below this, the chart is wider than asked.
const MIN_BAR: usize = 10;
/// `▏` to `█`: one to eight eighths of a cell.
const EIGHTHS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];

/// The width to draw for: `COLUMNS` (a positive number) if set, as shells
/// and `ls` honour it, else the width of the terminal on stdout, else
/// [`DEFAULT_WIDTH`].
pub fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .or_else(
            || match terminal_size::terminal_size_of(std::io::stdout()) {
                Some((terminal_size::Width(w), _)) if w > 0 => Some(usize::from(w)),
                _ => None,
            },
        )
        .unwrap_or(DEFAULT_WIDTH)
}

/// The chart of `bars` (label, count) in `width` columns.
pub fn render(bars: &[(String, u64)], width: usize) -> String {
    let label_width = bars
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let max = bars.iter().map(|&(_, n)| n).max().unwrap_or(0);
    let count_width = max.to_string().len();
    // label, two spaces, bar, two spaces, count
    let room = width
        .saturating_sub(label_width + count_width + 4)
        .max(MIN_BAR);
    let mut out = String::new();
    for (label, n) in bars {
        let bar = bar(*n, max, room);
        let pad = room - bar.chars().count();
        let _ = writeln!(
            out,
            "{label:<label_width$}  {bar}{:pad$}  {n:>count_width$}",
            ""
        );
    }
    out
}

/// `n` of `max` as a bar of at most `room` cells, in eighths. A non-zero
/// count shows at least an eighth, so that nothing looks like nothing.
fn bar(n: u64, max: u64, room: usize) -> String {
    if n == 0 || max == 0 {
        return String::new();
    }
    let eighths = ((u128::from(n) * room as u128 * 8 + u128::from(max) / 2) / u128::from(max))
        .max(1) as usize;
    let mut s = "█".repeat(eighths / 8);
    let partial = eighths % 8;
    if partial > 0 {
        s.push(EIGHTHS[partial - 1]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_in_eighths() {
        assert_eq!(bar(10, 10, 4), "████");
        assert_eq!(bar(5, 10, 4), "██");
        assert_eq!(bar(1, 16, 4), "▎");
        assert_eq!(bar(1, 1000, 4), "▏");
        assert_eq!(bar(0, 10, 4), "");
        assert_eq!(bar(3, 8, 1), "▍");
    }

    #[test]
    fn the_chart_fills_the_width() {
        let bars = vec![
            ("00:00".to_owned(), 8),
            ("01:00".to_owned(), 2),
            ("02:00".to_owned(), 0),
        ];
        assert_eq!(bar(3, 8, 20), "███████▌");
        let text = render(&bars, 30);
        assert_eq!(
            text,
            "00:00  ████████████████████  8\n\
             01:00  █████                 2\n\
             02:00                        0\n"
        );
        for line in text.lines() {
            assert_eq!(line.chars().count(), 30);
        }
        // Too narrow: the bar keeps its minimum.
        assert_eq!(render(&bars, 5).lines().next().unwrap().chars().count(), 20);
    }
}
