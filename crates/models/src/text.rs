//! What counts as blank text: whitespace, control characters and the invisible format
//! characters that render as nothing (zero-width spaces and joiners, the byte-order mark, soft
//! hyphens, fillers). A message made of them is as empty as one made of spaces.

/// A character that shows nothing on its own.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Nothing visible in `text`.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(is_invisible)
}

/// `text` without invisible characters at either end.
pub fn trim_invisible(text: &str) -> &str {
    text.trim_matches(is_invisible)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_text_is_blank() {
        for blank in
            ["", " ", "\u{200B}", "\u{FEFF}\u{200D}\u{2060}", " \u{00AD}\t\u{3164}", "\u{2800}"]
        {
            assert!(is_blank(blank), "{blank:?}");
        }
        for visible in ["a", "\u{200B}a", "😀", "👨\u{200D}👩", "日"] {
            assert!(!is_blank(visible), "{visible:?}");
        }
        assert_eq!(trim_invisible("\u{200B} hi \u{FEFF}"), "hi");
    }
}
