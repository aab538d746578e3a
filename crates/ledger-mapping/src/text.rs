//! Text Sage accepts: one cleaning for every text field the mapping sends.
//!
//! Magento stores some names and addresses HTML-escaped (`&amp;`, `&trade;`, `&#39;`,
//! sometimes twice: `&amp;amp;`). Sent as they are, the entities show up in Sage's
//! contact and document names, count against Sage's length limits (so names are cut
//! mid-word) and make Sage answer 422 on line descriptions (quirk 17). [`fit_text`] is the
//! one function that turns a Magento value into a Sage field: entities decoded, control
//! characters and whitespace runs reduced to single spaces, trimmed, then cut to the
//! field's limit in characters, at a word boundary when one is near. What it cut is
//! returned whole so the caller can keep it in the notes.

/// How far back from a field's limit (in characters) a cut looks for a space, at most.
pub const WORD_BOUNDARY_WINDOW: usize = 15;

/// A value fitted to a Sage field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    /// The text to send: clean and at most the field's limit in characters.
    pub text: String,
    /// The whole cleaned text when `text` had to be cut (for the notes), else `None`.
    pub full: Option<String>,
}

impl Fitted {
    /// True when the text was cut to fit.
    pub fn was_cut(&self) -> bool {
        self.full.is_some()
    }
}

/// Cleans `raw` for Sage and cuts it to `max` characters.
///
/// 1. HTML entities, named (`&trade;`) and numeric (`&#39;`, `&#x2019;`), are decoded with
///    the `html-escape` crate, again and again until nothing changes, so double-escaped
///    text (`&amp;amp;`) comes out plain. Numeric references that name no character a
///    text may hold (`&#0;`, a surrogate) are removed.
/// 2. Control characters and runs of whitespace become one space; the ends are trimmed.
/// 3. Longer than `max` characters (Sage counts characters, not bytes): the text is cut at
///    the last space within [`WORD_BOUNDARY_WINDOW`] characters (at most a fifth of `max`)
///    of the limit, else exactly at the limit, always between characters, never inside a
///    UTF-8 sequence. The whole text is then returned in [`Fitted::full`].
///
/// Cleaning is idempotent: `fit_text(&fit_text(s, n).text, n) == fit_text(s, n).text`
/// without a cut.
pub fn fit_text(raw: &str, max: usize) -> Fitted {
    let clean = clean_text(raw);
    match cut_at_boundary(&clean, max) {
        Some(text) => Fitted {
            text,
            full: Some(clean),
        },
        None => Fitted {
            text: clean,
            full: None,
        },
    }
}

/// Steps 1 and 2 of [`fit_text`] without a length limit.
pub fn clean_text(raw: &str) -> String {
    let mut text = collapse(raw);
    loop {
        // Each round that changes anything makes the text shorter in characters (an
        // entity has at least four, what it stands for at most two), so this ends.
        let decoded = collapse(&html_escape::decode_html_entities(&text));
        if decoded == text {
            break;
        }
        text = decoded;
    }
    // Only now is a numeric reference one the decoder refuses (not one a round has just
    // uncovered, `&amp;#39;` → `&#39;`). Its replacement, a space, cannot start a new one.
    collapse(&drop_unusable_references(&text))
}

/// Cleans each entry of a notes field (one line each) and joins them with line breaks,
/// then cuts the whole to `max` characters like [`fit_text`]. Empty entries are left out.
pub fn fit_notes<S: AsRef<str>>(entries: &[S], max: usize) -> String {
    let lines: Vec<String> = entries
        .iter()
        .map(|e| clean_text(e.as_ref()))
        .filter(|e| !e.is_empty())
        .collect();
    let joined = lines.join("\n");
    cut_at_boundary(&joined, max).unwrap_or(joined)
}

/// Control characters and whitespace runs → one space, ends trimmed.
fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

/// Replaces numeric character references the decoder left alone (they name NUL, a C0
/// control, a surrogate or a number beyond Unicode, none of which a text may hold) with a
/// space. What is left that looks like `&#...;` is no longer a reference.
fn drop_unusable_references(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'&' && bytes.get(i + 1) == Some(&b'#') {
            let hex = matches!(bytes.get(i + 2), Some(b'x' | b'X'));
            let start = if hex { i + 3 } else { i + 2 };
            let digits = bytes[start..]
                .iter()
                .take_while(|b| {
                    if hex {
                        b.is_ascii_hexdigit()
                    } else {
                        b.is_ascii_digit()
                    }
                })
                .count();
            if digits > 0 && bytes.get(start + digits) == Some(&b';') {
                out.push_str(&s[copied..i]);
                out.push(' ');
                i = start + digits + 1;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    out
}

/// `Some(cut text)` when `s` is longer than `max` characters, else `None`.
fn cut_at_boundary(s: &str, max: usize) -> Option<String> {
    let (limit_byte, next) = match s.char_indices().nth(max) {
        Some((byte, c)) => (byte, c),
        None => return None,
    };
    let head = &s[..limit_byte];
    if next.is_whitespace() {
        // The limit falls on a word boundary already.
        return Some(head.trim_end().to_owned());
    }
    let window = (max / 5).min(WORD_BOUNDARY_WINDOW);
    let space = head
        .char_indices()
        .rev()
        .take(window)
        .find(|(_, c)| c.is_whitespace())
        .map(|(byte, _)| byte);
    let cut = match space {
        Some(byte) if !head[..byte].trim_end().is_empty() => &head[..byte],
        _ => head,
    };
    Some(cut.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_are_decoded_until_stable() {
        let table = [
            ("Salt &amp; Pepper", "Salt & Pepper"),
            ("Salt &amp;amp; Pepper", "Salt & Pepper"),
            ("O&#39;Brien &amp;#39;s", "O'Brien 's"),
            ("Acme&trade; Ltd", "Acme™ Ltd"),
            ("Caf&eacute; &#x2013; &#8211;", "Café – –"),
            ("&lt;b&gt;", "<b>"),
            // Literal ampersands that are not entities stay.
            ("R&D & Co", "R&D & Co"),
            ("AT&T;", "AT&T;"),
            // References to characters no text may hold go.
            ("a&#0;b&#x1;c&#xD800;d", "a b c d"),
            ("&nbsp;x&nbsp;&nbsp;y&NewLine;z", "x y z"),
        ];
        for (raw, want) in table {
            assert_eq!(clean_text(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn control_characters_and_whitespace_collapse() {
        assert_eq!(
            clean_text("  Ada\t\u{0}Love\u{7f}lace\r\n Ltd \u{85} "),
            "Ada Love lace Ltd"
        );
        // A control character cannot glue an entity together.
        assert_eq!(clean_text("&amp;\u{1}amp;"), "& amp;");
    }

    #[test]
    fn cuts_at_a_near_word_boundary() {
        // 50-character limit, window 10: "…Business Park, Long Meadow" ends at 50 exactly.
        let street = "Unit 7, The Old Granary Business Park, Long Meadow Industrial Estate";
        let f = fit_text(street, 50);
        assert_eq!(f.text, "Unit 7, The Old Granary Business Park, Long Meadow");
        assert_eq!(f.full.as_deref(), Some(street));
        // Limit inside "Industrial": the space before it is 5 back, within the window.
        let f = fit_text(street, 55);
        assert_eq!(f.text, "Unit 7, The Old Granary Business Park, Long Meadow");
        // A word longer than the window is cut at the limit.
        let f = fit_text("Ab Cdefghijklmnopqrstuvwxyz", 20);
        assert_eq!(f.text, "Ab Cdefghijklmnopqrs");
        // Short fields: window is a fifth of the limit.
        assert_eq!(fit_text("D-12345-6789-X", 10).text, "D-12345-67");
        assert_eq!(fit_text("SW1A 1AAXYZ", 10).text, "SW1A 1AAXY");
        assert_eq!(fit_text("abcdefgh ij", 10).text, "abcdefgh");
    }

    #[test]
    fn fits_without_a_cut_report_nothing() {
        let f = fit_text("  Ada &amp; Co  ", 10);
        assert_eq!(f.text, "Ada & Co");
        assert!(!f.was_cut());
        // Entities no longer eat the limit: 12 characters escaped, 8 decoded.
        assert_eq!(fit_text("Ada &amp; Co", 8).text, "Ada & Co");
    }

    #[test]
    fn counts_characters_not_bytes() {
        let greek = "Αθήνα ".repeat(20);
        let f = fit_text(&greek, 50);
        assert!(f.text.chars().count() <= 50);
        assert!(f.text.starts_with("Αθήνα Αθήνα"));
        let emoji = "😀".repeat(60);
        assert_eq!(fit_text(&emoji, 50).text, "😀".repeat(50));
        let japanese = "東京都渋谷区".repeat(20);
        assert_eq!(fit_text(&japanese, 100).text.chars().count(), 100);
    }

    #[test]
    fn notes_keep_one_entry_per_line() {
        let notes = fit_notes(&["Full name: A &amp; B", "", "  PO\tnumber: 12 "], 2000);
        assert_eq!(notes, "Full name: A & B\nPO number: 12");
        let long = fit_notes(&["x".repeat(30), "y".repeat(30)], 40);
        assert!(long.chars().count() <= 40);
        assert!(long.starts_with(&"x".repeat(30)));
    }
}
