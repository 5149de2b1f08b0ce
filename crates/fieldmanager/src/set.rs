//! [`FieldSet`]: a set of paths, stored as a trie the way upstream's
//! `fieldpath.Set` is.
//!
//! Each node holds the elements that are themselves members (owned leaves
//! or owned list items) and the children that have members below them. A
//! node can be both, which fieldsV1 writes as the `"."` key. Membership of
//! a path says nothing about its descendants: set operations are on paths,
//! exactly as upstream's `Union`, `Intersection` and `Difference`.

use std::collections::{BTreeMap, BTreeSet};

use crate::path::{Path, PathElement};

/// A set of field paths (one manager's fields, a comparison result, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    pub(crate) members: BTreeSet<PathElement>,
    /// Never holds an empty set.
    pub(crate) children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// A set of the given paths.
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a Path>) -> FieldSet {
        let mut set = FieldSet::new();
        for p in paths {
            set.insert(&p.0);
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds a path; the empty path (the root) is not representable and is
    /// ignored, as upstream never owns the root.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether the path is a member.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// The members below `pe` (upstream `WithPrefix`), if any.
    pub fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    /// Whether `pe` directly under this node is a member.
    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, mine)| {
                let theirs = other.children.get(pe)?;
                let both = mine.intersection(theirs);
                (!both.is_empty()).then(|| (pe.clone(), both))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Paths of `self` that are not paths of `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, mine)| {
                let rest = match other.children.get(pe) {
                    Some(theirs) => mine.difference(theirs),
                    None => mine.clone(),
                };
                (!rest.is_empty()).then(|| (pe.clone(), rest))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Every member path, in upstream's iteration order (a node's members
    /// first, then its children's members, each in element order).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        for pe in &self.members {
            let mut p = prefix.clone();
            p.push(pe.clone());
            out.push(Path(p));
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Number of member paths.
    pub fn len(&self) -> usize {
        self.members.len() + self.children.values().map(FieldSet::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(names: &[&str]) -> Path {
        Path::fields(names)
    }

    #[test]
    fn set_operations_are_on_paths() {
        let a = FieldSet::from_paths(&[
            p(&["spec", "replicas"]),
            p(&["spec", "paused"]),
            p(&["spec"]),
        ]);
        let b =
            FieldSet::from_paths(&[p(&["spec", "replicas"]), p(&["metadata", "labels", "app"])]);
        assert_eq!(a.intersection(&b).paths(), vec![p(&["spec", "replicas"])]);
        assert_eq!(
            a.difference(&b).paths(),
            vec![p(&["spec"]), p(&["spec", "paused"])]
        );
        assert_eq!(a.union(&b).len(), 4);
        assert!(a.difference(&a).is_empty());
        assert!(a.has(&p(&["spec"]).0) && !b.has(&p(&["spec"]).0));
    }

    #[test]
    fn iteration_lists_members_before_children() {
        let s = FieldSet::from_paths(&[
            p(&["spec", "template", "x"]),
            p(&["spec", "replicas"]),
            p(&["spec", "paused"]),
        ]);
        let got: Vec<String> = s.paths().iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            vec![".spec.paused", ".spec.replicas", ".spec.template.x"]
        );
    }
}
