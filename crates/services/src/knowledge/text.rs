//! Word handling shared by retrieval and value lookup: folding case and accents, dropping
//! words that say nothing about a question, and a light suffix stemmer, so "Monthly revenue
//! totals" and "total revenue per month" share `month`, `revenue`, `total`.

use std::collections::BTreeSet;

use unicode_normalization::UnicodeNormalization;

/// Lowercase without accents: "São Paulo" → "sao paulo".
pub fn fold(text: &str) -> String {
    text.nfd()
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .flat_map(char::to_lowercase)
        .collect()
}

const STOPWORDS: &[&str] = &[
    "a", "about", "all", "an", "and", "any", "are", "as", "at", "be", "by", "can", "could", "did",
    "do", "does", "each", "every", "for", "from", "get", "give", "had", "has", "have", "how", "i",
    "in", "into", "is", "it", "its", "list", "me", "much", "my", "of", "on", "or", "our", "per",
    "please", "show", "tell", "than", "that", "the", "their", "them", "there", "these", "this",
    "those", "to", "us", "was", "we", "were", "what", "when", "where", "which", "who", "whose",
    "why", "will", "with", "would", "you", "your", "many", "number",
];

/// A word reduced to a rough stem: plural, adverb and verb endings off.
pub fn stem(word: &str) -> String {
    let w = word;
    for (suffix, keep) in [("ies", "y"), ("ly", ""), ("ing", ""), ("ed", ""), ("s", "")] {
        if let Some(base) = w.strip_suffix(suffix)
            && base.chars().count() >= 3
            && !(suffix == "s" && base.ends_with('s'))
        {
            return format!("{base}{keep}");
        }
    }
    w.to_owned()
}

/// The words of `text` that carry meaning: folded, stop words dropped.
pub fn words(text: &str) -> Vec<String> {
    fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !STOPWORDS.contains(w))
        .map(str::to_owned)
        .collect()
}

/// The stems of `text`'s meaningful words.
pub fn stems(text: &str) -> BTreeSet<String> {
    words(text).iter().map(|w| stem(w)).collect()
}

/// Character trigrams of folded text (for typo-tolerant value matching).
pub fn trigrams(folded: &str) -> BTreeSet<String> {
    let chars: Vec<char> = folded.chars().collect();
    chars.windows(3).map(|w| w.iter().collect()).collect()
}

/// Similarity of a typed text and a stored value, both folded: 1 for equal, high when the value
/// contains what was typed (a partial word), else the trigram Dice coefficient (typos).
pub fn similarity(typed: &str, stored: &str) -> f64 {
    if typed == stored {
        return 1.0;
    }
    let (lt, ls) = (typed.chars().count() as f64, stored.chars().count() as f64);
    let contained = if stored.contains(typed) { 0.6 + 0.35 * lt / ls.max(1.0) } else { 0.0 };
    let (a, b) = (trigrams(typed), trigrams(stored));
    let dice = if a.is_empty() || b.is_empty() {
        0.0
    } else {
        2.0 * a.intersection(&b).count() as f64 / (a.len() + b.len()) as f64
    };
    contained.max(dice)
}

/// A statement's shape for "did the agent reuse this verified query?": case and spacing
/// folded, a trailing `;` dropped, and (with `literals` false) every string and number literal
/// replaced by `?`.
pub fn sql_shape(sql: &str, literals: bool) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.trim().trim_end_matches(';').chars().peekable();
    let mut last_space = false;
    let mut prev_word = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            let mut lit = String::from('\'');
            while let Some(n) = chars.next() {
                lit.push(n);
                if n == '\'' {
                    if chars.peek() == Some(&'\'') {
                        lit.push('\'');
                        chars.next();
                    } else {
                        break;
                    }
                }
            }
            out.push_str(if literals { &lit } else { "?" });
            last_space = false;
            prev_word = false;
        } else if c.is_whitespace() {
            if !last_space && !out.is_empty() {
                out.push(' ');
            }
            last_space = true;
            prev_word = false;
        } else if c.is_ascii_digit() && !prev_word && !literals {
            while chars.peek().is_some_and(|n| n.is_ascii_digit() || *n == '.') {
                chars.next();
            }
            out.push('?');
            last_space = false;
        } else {
            out.extend(c.to_lowercase());
            prev_word = c.is_alphanumeric() || c == '_';
            last_space = false;
        }
    }
    // spaces around punctuation do not change a statement (one pass: runs of whitespace are
    // single spaces by now)
    let punctuation = |c: Option<char>| c.is_some_and(|c| "(),=<>*+-/".contains(c));
    let mut folded = String::with_capacity(out.len());
    let mut rest = out.trim().chars().peekable();
    while let Some(c) = rest.next() {
        if c == ' '
            && (punctuation(folded.chars().next_back()) || punctuation(rest.peek().copied()))
        {
            continue;
        }
        folded.push(c);
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_and_stems() {
        assert_eq!(fold("São PAULO"), "sao paulo");
        let a = stems("Show me monthly revenue totals");
        let b = stems("What is the total revenue per month?");
        assert_eq!(a, b, "{a:?} vs {b:?}");
        assert!(stems("How many customers are there?").contains("customer"));
        assert_eq!(stem("categories"), "category");
        assert_eq!(stem("class"), "class");
    }

    #[test]
    fn similarity_tolerates_typos_partials_and_accents() {
        assert_eq!(similarity("new york", "new york"), 1.0);
        assert!(similarity("york", "new york") > 0.7);
        assert!(similarity("new yrok", "new york") >= 0.4);
        assert!(similarity(&fold("sao paulo"), &fold("São Paulo")) == 1.0);
        assert!(similarity("new york", "tokyo") < 0.2);
    }

    #[test]
    fn sql_shapes_fold_spacing_case_and_literals() {
        let a = "SELECT count(*) FROM customers WHERE country = 'USA';";
        let b = "select COUNT( * )\n  from customers where country='USA'";
        assert_eq!(sql_shape(a, true), sql_shape(b, true));
        let c = "SELECT count(*) FROM customers WHERE country = 'France'";
        assert_ne!(sql_shape(a, true), sql_shape(c, true));
        assert_eq!(sql_shape(a, false), sql_shape(c, false));
        let year = "SELECT * FROM orders WHERE order_date >= '2023-01-01' LIMIT 10";
        let other = "SELECT * FROM orders WHERE order_date >= '2024-01-01' LIMIT 5";
        assert_eq!(sql_shape(year, false), sql_shape(other, false));
        assert_ne!(sql_shape("SELECT a1 FROM t", false), sql_shape("SELECT a2 FROM t", false));
        // the exact fold: spaces around punctuation dropped, others kept single, literals kept
        assert_eq!(
            sql_shape("  SELECT  a , b\tFROM t WHERE x = ( 1 + 2 ) AND y <> 'a  b' ;", true),
            "select a,b from t where x=(1+2)and y<>'a  b'"
        );
        assert_eq!(sql_shape("SELECT - 3 , f( x ) / 2", false), "select-?,f(x)/?");
    }
}
