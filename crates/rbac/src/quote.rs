//! Go's `%q` formatting, because upstream's messages quote with it and
//! clients (and tests) compare those strings.

pub(crate) use skiff_apimachinery::go_quote;

/// Quotes a list the way Go's `%q` prints a `[]string`: `["a" "b"]`.
pub(crate) fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b"), r#""a\"b""#);
        assert_eq!(go_quote_list(&["".into(), "apps".into()]), r#"["" "apps"]"#);
        assert_eq!(go_quote_list(&[]), "[]");
    }
}
