//! Address comparison. Same household = same street line and postcode; neighbour = same
//! street and postcode, different house. Hand-typed addresses differ in case, spacing,
//! punctuation and abbreviations, so both sides are folded to one form first.

/// The folded form of a street line: lower case, punctuation dropped, common street
/// words abbreviated, whitespace collapsed.
pub fn fold(address: &str) -> String {
    let cleaned: String = address
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    cleaned
        .split_whitespace()
        .map(abbreviate)
        .collect::<Vec<_>>()
        .join(" ")
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
}

/// Folded postcode: the first five characters of a US ZIP+4, upper-cased elsewhere.
pub fn postcode(p: &str) -> String {
    let t: String = p.chars().filter(|c| !c.is_whitespace()).collect();
    let t = t.to_ascii_uppercase();
    if t.len() == 10 && t.as_bytes()[5] == b'-' {
        t[..5].to_string()
    } else {
        t
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
}
