//! Spin's variable names, one rule for the manifest, `--variable` and a
//! guest's `fermyon:spin/variables` calls alike.

/// Spin's variable names: a lowercase letter, then lowercase letters,
/// digits and `_`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_snake_case() {
        for (name, valid) in [
            ("api_key", true),
            ("a1", true),
            ("Api", false),
            ("1a", false),
            ("a-b", false),
            ("", false),
        ] {
            assert_eq!(is_valid_name(name), valid, "{name}");
        }
    }
}
