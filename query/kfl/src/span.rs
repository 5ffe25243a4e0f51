//! Byte ranges into the query text, and their `line:col` positions.

/// A byte range `start..end` into the query text. Zero-width spans point between characters
/// (for example the end of the query).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span that covers both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    /// The 1-based line and column (in characters) of the span's start in `text`.
    pub fn position(self, text: &str) -> Position {
        let start = floor_char_boundary(text, self.start);
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = text[line_start..start].chars().count() + 1;
        Position { line, col }
    }
}

/// A 1-based `line:col` position, columns counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub col: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// The largest char boundary at or below `i` (clamped to the text).
pub(crate) fn floor_char_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_chars() {
        let text = "ab\ncé d";
        assert_eq!(Span::new(0, 1).position(text), Position { line: 1, col: 1 });
        assert_eq!(Span::new(7, 8).position(text), Position { line: 2, col: 4 });
        assert_eq!(Span::new(99, 99).position(text), Position { line: 2, col: 5 });
    }
}
