//! `status.completedIndexes` of Indexed Jobs: a sorted, comma-separated
//! list of indexes and ranges (`1,3-5,7`), as upstream writes it.

use std::collections::BTreeSet;

/// Parses `completedIndexes`, keeping indexes below `completions`
/// (malformed parts are skipped, as upstream does).
pub fn parse(text: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(lo), Ok(hi)) = (lo, hi) {
            out.extend((lo.max(0)..=hi.min(completions - 1)).filter(|i| *i >= lo));
        }
    }
    out
}

/// Formats indexes as upstream: consecutive runs of three or more become
/// `a-b`, two become `a,b`.
pub fn format(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        match end - start {
            0 => parts.push(start.to_string()),
            1 => {
                parts.push(start.to_string());
                parts.push(end.to_string());
            }
            _ => parts.push(format!("{start}-{end}")),
        }
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let set = parse("0,2-4,6,7,9-20", 12);
        assert_eq!(
            set.iter().copied().collect::<Vec<_>>(),
            [0, 2, 3, 4, 6, 7, 9, 10, 11]
        );
        assert_eq!(format(&set), "0,2-4,6,7,9-11");
        assert_eq!(format(&BTreeSet::new()), "");
        assert!(parse("", 3).is_empty());
        assert_eq!(parse("x,1", 3).into_iter().collect::<Vec<_>>(), [1]);
    }
}
