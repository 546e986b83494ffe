//! Address comparison. Same household = same street line and postcode; neighbour = same
//! street and postcode, different house. Hand-typed addresses differ in case, spacing,
//! punctuation and abbreviations, so both sides are folded to one form first.

/// The folded form of a street line: lower case, punctuation dropped, common street
/// words abbreviated, whitespace collapsed.
pub fn fold(address: &str) -> String {
    let mut out = String::new();
    fold_into(address, &mut String::new(), &mut out);
    out
}

/// [`fold`] into `out` (cleared first), with `scratch` for the cleaned line: a directory
/// of millions of patients folds as many addresses, and reusing both buffers spares two
/// allocations each.
pub fn fold_into(address: &str, scratch: &mut String, out: &mut String) {
    scratch.clear();
    scratch.extend(address.chars().map(|c| {
        if c.is_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            ' '
        }
    }));
    out.clear();
    for (i, w) in scratch.split_whitespace().map(abbreviate).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
}

fn abbreviate(word: &str) -> &str {
    match word {
        "street" => "st",
        "avenue" => "ave",
        "road" => "rd",
        "drive" => "dr",
        "lane" => "ln",
        "boulevard" => "blvd",
        "court" => "ct",
        "place" => "pl",
        "terrace" => "ter",
        "highway" => "hwy",
        "north" => "n",
        "south" => "s",
        "east" => "e",
        "west" => "w",
        "apartment" | "apt" | "unit" | "suite" | "ste" => "#",
        w => w,
    }
}

/// The street of a folded address: the line without its house number (a leading token
/// holding a digit) and without any unit part (`# 4B`).
pub fn street(folded: &str) -> String {
    street_of(folded).to_string()
}

/// [`street`] without a copy: the words of a folded line are one space apart, so the
/// street is a slice of it.
pub fn street_of(folded: &str) -> &str {
    let mut rest = folded;
    let first = rest.split(' ').next().unwrap_or("");
    if first.chars().any(|c| c.is_ascii_digit()) {
        rest = rest.get(first.len() + 1..).unwrap_or("");
    }
    let mut end = 0;
    for w in rest.split(' ') {
        if w == "#" {
            break;
        }
        end += w.len() + 1;
    }
    &rest[..end.saturating_sub(1).min(rest.len())]
}

/// Folded postcode: the first five characters of a US ZIP+4, upper-cased elsewhere.
pub fn postcode(p: &str) -> String {
    let mut out = String::new();
    postcode_into(p, &mut out);
    out
}

/// [`postcode`] into `out` (cleared first).
pub fn postcode_into(p: &str, out: &mut String) {
    out.clear();
    out.extend(p.chars().filter(|c| !c.is_whitespace()));
    out.make_ascii_uppercase();
    if out.len() == 10 && out.as_bytes()[5] == b'-' {
        out.truncate(5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(fold("12 Elm Street"), fold(" 12  elm st."));
        assert_eq!(street(&fold("12 Elm St")), "elm st");
        assert_eq!(street(&fold("14 Elm St Apt 4")), "elm st");
        assert_eq!(postcode("01101-1234"), "01101");
    }

    /// The slice is what joining the words did.
    #[test]
    fn street_of_is_the_joined_words() {
        let joined = |folded: &str| {
            let mut words = folded.split(' ').peekable();
            if words
                .peek()
                .is_some_and(|w| w.chars().any(|c| c.is_ascii_digit()))
            {
                words.next();
            }
            words
                .take_while(|w| *w != "#")
                .collect::<Vec<_>>()
                .join(" ")
        };
        for a in [
            "",
            "12",
            "# 4",
            "12 # 4",
            "elm st",
            "12 elm st",
            "12 elm st # 4b",
            "4b",
            "a1 b2 c3",
            "12 n main st # 7 # 8",
            "elm # 3",
            "#",
        ] {
            assert_eq!(street_of(a), joined(a), "{a:?}");
        }
        for a in [
            "14 Elm Street, Apt 4",
            "  12  Elm  St. ",
            "Unit 5, 9 Oak Avenue",
            "R\u{e9}sidence 3",
        ] {
            let f = fold(a);
            assert_eq!(street_of(&f), joined(&f), "{a:?}");
        }
    }
}
