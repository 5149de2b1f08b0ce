//! Writing the ruleset into the kernel: one `nft -f -` transaction per
//! sync, so the kernel only ever sees the previous or the new ruleset.
//!
//! The first transaction (and any after a failure) recreates our tables
//! (`add table` + `delete table` + the declarations). Later ones change
//! the tables in place and only where the ruleset changed
//! ([`partial_transaction`]): flush the chains and maps whose content
//! changed, delete objects that went away or whose declaration changed,
//! declare the changed and new ones. `nft`'s cost grows with what it is
//! given, so a one-Service change stays cheap with thousands of Services.
//! The periodic full sync ([`Applier::apply_full`]) rewrites every object
//! in place ([`transaction`]), repairing anything changed behind our
//! back. Both keep the dynamic session-affinity sets (their elements are
//! the affinity state).
//!
//! [`Applier`] is the seam: [`NftApplier`] runs `nft` (optionally inside a
//! network namespace, for tests), [`Recorder`] only records the text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Stdio;
use std::sync::Mutex;

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::watch;

use crate::ProxyError;
use crate::conntrack::{self, Flush};
use crate::ruleset::{Family, Object, Ruleset, TABLE, Table};

/// Puts a ruleset into effect.
pub trait Applier: Send + Sync + 'static {
    /// Puts `ruleset` into effect, writing only what changed when it can.
    fn apply<'a>(&'a self, ruleset: &'a Ruleset) -> BoxFuture<'a, Result<(), ProxyError>>;

    /// Puts `ruleset` into effect rewriting every object (the periodic
    /// full sync, which repairs tables changed by someone else).
    fn apply_full<'a>(&'a self, ruleset: &'a Ruleset) -> BoxFuture<'a, Result<(), ProxyError>> {
        self.apply(ruleset)
    }

    /// Deletes stale conntrack entries, once the rules that make them
    /// stale are in place. Failures are logged, not returned: the rules
    /// are right either way, and the entries time out eventually.
    fn flush_conntrack<'a>(&'a self, flushes: &'a [Flush]) -> BoxFuture<'a, ()> {
        let _ = flushes;
        Box::pin(async {})
    }
}

/// The nft script that turns `previous` (what we last applied, `None` when
/// unknown) into `desired`.
pub fn transaction(desired: &Ruleset, previous: Option<&Ruleset>) -> String {
    let mut out = String::new();
    let Some(previous) = previous else {
        for family in [Family::V4, Family::V6] {
            let f = family.nft();
            let _ = writeln!(out, "add table {f} {TABLE}\ndelete table {f} {TABLE}");
        }
        for t in &desired.tables {
            let _ = write!(out, "{t}");
        }
        return out;
    };
    let mut tail = String::new();
    for family in [Family::V4, Family::V6] {
        let f = family.nft();
        let old = previous.tables.iter().find(|t| t.family == family);
        let new = desired.tables.iter().find(|t| t.family == family);
        match (old, new) {
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => {
                let _ = writeln!(out, "add table {f} {TABLE}\ndelete table {f} {TABLE}");
            }
            (Some(old), Some(new)) => rewrite(&mut out, old, new),
        }
        if let Some(new) = new {
            let _ = write!(tail, "{new}");
        }
    }
    out.push_str(&tail);
    out
}

/// The nft script that turns `previous` (what is in the kernel) into
/// `desired` touching only objects whose declaration or content differ;
/// empty when nothing does. References between objects are by name in
/// their bodies, so an object that goes away is only referenced by objects
/// that change too (and are flushed before it is deleted).
pub fn partial_transaction(desired: &Ruleset, previous: &Ruleset) -> String {
    let mut out = String::new();
    let mut tail = String::new();
    for family in [Family::V4, Family::V6] {
        let f = family.nft();
        let old = previous.tables.iter().find(|t| t.family == family);
        let new = desired.tables.iter().find(|t| t.family == family);
        match (old, new) {
            (None, None) => {}
            (Some(_), None) => {
                let _ = writeln!(out, "add table {f} {TABLE}\ndelete table {f} {TABLE}");
            }
            (None, Some(new)) => {
                let _ = writeln!(out, "add table {f} {TABLE}\ndelete table {f} {TABLE}");
                let _ = write!(tail, "{new}");
            }
            (Some(old), Some(new)) => {
                let before: BTreeMap<(&str, &str), &Object> = old
                    .objects
                    .iter()
                    .map(|o| ((o.kind, o.name.as_str()), o))
                    .collect();
                let after: BTreeMap<(&str, &str), &Object> = new
                    .objects
                    .iter()
                    .map(|o| ((o.kind, o.name.as_str()), o))
                    .collect();
                let mut deletes = String::new();
                for o in &old.objects {
                    let now = after.get(&(o.kind, o.name.as_str()));
                    if now == Some(&o) {
                        continue;
                    }
                    if o.kind == "chain" || !o.body.is_empty() {
                        let _ = writeln!(out, "flush {} {f} {TABLE} {}", o.kind, o.name);
                    }
                    if now.is_none_or(|n| n.header != o.header) {
                        let _ = writeln!(deletes, "delete {} {f} {TABLE} {}", o.kind, o.name);
                    }
                }
                out.push_str(&deletes);
                let changed: Vec<&Object> = new
                    .objects
                    .iter()
                    .filter(|o| before.get(&(o.kind, o.name.as_str())) != Some(o))
                    .collect();
                if !changed.is_empty() {
                    let _ = writeln!(tail, "table {f} {TABLE} {{");
                    for o in changed {
                        let _ = writeln!(tail, "\t{} {} {{", o.kind, o.name);
                        for line in o.header.iter().chain(&o.body) {
                            let _ = writeln!(tail, "\t\t{line}");
                        }
                        let _ = writeln!(tail, "\t}}");
                    }
                    let _ = writeln!(tail, "}}");
                }
            }
        }
    }
    out.push_str(&tail);
    out
}

/// Flushes and deletes in `old` so that declaring `new` leaves exactly it.
fn rewrite(out: &mut String, old: &Table, new: &Table) {
    let f = old.family.nft();
    let wanted: BTreeMap<(&str, &str), &Vec<String>> = new
        .objects
        .iter()
        .map(|o| ((o.kind, o.name.as_str()), &o.header))
        .collect();
    for o in &old.objects {
        if o.kind == "chain" || !o.body.is_empty() {
            let _ = writeln!(out, "flush {} {f} {TABLE} {}", o.kind, o.name);
        }
    }
    for o in &old.objects {
        if wanted.get(&(o.kind, o.name.as_str())) != Some(&&o.header) {
            let _ = writeln!(out, "delete {} {f} {TABLE} {}", o.kind, o.name);
        }
    }
}

/// Runs `nft`, in the current network namespace or, for tests, in a named
/// one (`ip netns exec NAME nft ...`).
pub struct NftApplier {
    netns: Option<String>,
    applied: Mutex<Option<Ruleset>>,
}

impl Default for NftApplier {
    fn default() -> Self {
        NftApplier::new()
    }
}

impl NftApplier {
    pub fn new() -> NftApplier {
        NftApplier {
            netns: None,
            applied: Mutex::new(None),
        }
    }

    /// An applier that runs nft inside the network namespace `name`.
    pub fn in_netns(name: &str) -> NftApplier {
        NftApplier {
            netns: Some(name.to_owned()),
            applied: Mutex::new(None),
        }
    }

    /// `program args...`, inside the namespace when there is one.
    fn command(&self, program: &str) -> tokio::process::Command {
        match &self.netns {
            Some(ns) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => tokio::process::Command::new(program),
        }
    }

    /// Runs `conntrack` with `flush`'s arguments.
    async fn run_conntrack(&self, flush: &Flush) -> Result<(), ProxyError> {
        let output = self
            .command("conntrack")
            .args(flush.args())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(ProxyError::ConntrackSpawn)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() || conntrack::nothing_matched(&stderr) {
            Ok(())
        } else {
            Err(ProxyError::Conntrack {
                status: output.status.to_string(),
                stderr: stderr.trim().to_owned(),
            })
        }
    }

    /// Runs `nft -f -` with `script` on stdin.
    pub async fn run_script(&self, script: &str) -> Result<(), ProxyError> {
        let mut cmd = self.command("nft");
        cmd.args(["-f", "-"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(ProxyError::NftSpawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(ProxyError::NftSpawn)?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(ProxyError::NftSpawn)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(ProxyError::Nft {
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }

    async fn apply_inner(&self, ruleset: &Ruleset, full: bool) -> Result<(), ProxyError> {
        let previous = self.applied.lock().ok().and_then(|mut a| a.take());
        if let Some(previous) = previous {
            let script = if full {
                transaction(ruleset, Some(&previous))
            } else {
                partial_transaction(ruleset, &previous)
            };
            if script.is_empty() {
                self.remember(ruleset);
                return Ok(());
            }
            match self.run_script(&script).await {
                Ok(()) => {
                    self.remember(ruleset);
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "in-place nftables update failed; recreating the table");
                }
            }
        }
        self.run_script(&transaction(ruleset, None)).await?;
        self.remember(ruleset);
        Ok(())
    }

    fn remember(&self, ruleset: &Ruleset) {
        if let Ok(mut a) = self.applied.lock() {
            *a = Some(ruleset.clone());
        }
    }

    /// Deletes our tables (both families); fine when they do not exist.
    pub async fn cleanup(&self) -> Result<(), ProxyError> {
        if let Ok(mut a) = self.applied.lock() {
            *a = None;
        }
        let mut script = String::new();
        for family in [Family::V4, Family::V6] {
            let f = family.nft();
            let _ = writeln!(script, "add table {f} {TABLE}\ndelete table {f} {TABLE}");
        }
        self.run_script(&script).await
    }
}

impl Applier for NftApplier {
    fn apply<'a>(&'a self, ruleset: &'a Ruleset) -> BoxFuture<'a, Result<(), ProxyError>> {
        Box::pin(self.apply_inner(ruleset, false))
    }

    fn apply_full<'a>(&'a self, ruleset: &'a Ruleset) -> BoxFuture<'a, Result<(), ProxyError>> {
        Box::pin(self.apply_inner(ruleset, true))
    }

    fn flush_conntrack<'a>(&'a self, flushes: &'a [Flush]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for flush in flushes {
                match self.run_conntrack(flush).await {
                    Ok(()) => {
                        tracing::info!(entries = ?flush, "stale UDP conntrack entries cleared")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, entries = ?flush, "clearing stale UDP conntrack entries failed");
                        if matches!(e, ProxyError::ConntrackSpawn(_)) {
                            // No conntrack tool: the rest would fail alike.
                            return;
                        }
                    }
                }
            }
        })
    }
}

/// Records the ruleset text instead of applying it (tests, dry runs).
pub struct Recorder {
    latest: watch::Sender<String>,
    history: Mutex<Vec<String>>,
    flushes: Mutex<Vec<Flush>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            latest: watch::channel(String::new()).0,
            history: Mutex::new(Vec::new()),
            flushes: Mutex::new(Vec::new()),
        }
    }

    /// Every conntrack flush asked for, oldest first.
    pub fn flushes(&self) -> Vec<Flush> {
        self.flushes.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Follows the latest applied text (empty before the first sync).
    pub fn subscribe(&self) -> watch::Receiver<String> {
        self.latest.subscribe()
    }

    /// Every applied text, oldest first.
    pub fn history(&self) -> Vec<String> {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Applier for Recorder {
    fn apply<'a>(&'a self, ruleset: &'a Ruleset) -> BoxFuture<'a, Result<(), ProxyError>> {
        let text = ruleset.to_string();
        if let Ok(mut h) = self.history.lock() {
            h.push(text.clone());
        }
        self.latest.send_replace(text);
        Box::pin(async { Ok(()) })
    }

    fn flush_conntrack<'a>(&'a self, flushes: &'a [Flush]) -> BoxFuture<'a, ()> {
        if let Ok(mut h) = self.flushes.lock() {
            h.extend_from_slice(flushes);
        }
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::{Endpoint, ServicePort, State};
    use crate::ruleset::build;

    fn state(endpoints: &[&str]) -> State {
        let mut s = ServicePort::cluster_ip("d", "web", "10.43.0.1".parse().unwrap(), 80);
        s.affinity_timeout = Some(60);
        s.endpoints = endpoints
            .iter()
            .map(|a| Endpoint::ready(a.parse().unwrap(), 8080, None))
            .collect();
        State {
            services: vec![s],
            ..State::default()
        }
    }

    #[test]
    fn first_transaction_recreates_the_tables() {
        let t = transaction(&build(&state(&["10.42.0.5"])), None);
        assert!(t.starts_with(
            "add table ip skiff-proxy\ndelete table ip skiff-proxy\n\
             add table ip6 skiff-proxy\ndelete table ip6 skiff-proxy\ntable ip skiff-proxy {\n"
        ));
    }

    #[test]
    fn partial_transactions_touch_only_what_changed() {
        let mut two = state(&["10.42.0.5", "10.42.0.6"]);
        let mut other = ServicePort::cluster_ip("d", "other", "10.43.0.2".parse().unwrap(), 80);
        other.endpoints = vec![Endpoint::ready("10.42.0.9".parse().unwrap(), 8080, None)];
        two.services.push(other.clone());
        let mut one = state(&["10.42.0.6"]);
        one.services.push(other);
        let (old, new) = (build(&two), build(&one));
        assert_eq!(partial_transaction(&old, &old), "");
        let t = partial_transaction(&new, &old);
        let (prelude, rest) = t.split_once("table ip skiff-proxy {").unwrap();
        assert_eq!(
            prelude,
            "flush chain ip skiff-proxy service-d/web/tcp/80\n\
             flush chain ip skiff-proxy endpoint-d/web/tcp/80__10.42.0.5/8080\n\
             delete set ip skiff-proxy affinity-d/web/tcp/80__10.42.0.5/8080\n\
             delete chain ip skiff-proxy endpoint-d/web/tcp/80__10.42.0.5/8080\n"
        );
        // Only the changed chain is declared again; the other Service, the
        // maps (same elements) and the kept endpoint are not written.
        assert!(rest.contains("\tchain service-d/web/tcp/80 {"), "{rest}");
        assert!(!rest.contains("other"), "{rest}");
        assert!(!rest.contains("map service-ips"), "{rest}");
        assert!(!rest.contains("10.42.0.6/8080 {"), "{rest}");
    }

    #[test]
    fn later_transactions_rewrite_in_place_and_keep_affinity_sets() {
        let old = build(&state(&["10.42.0.5", "10.42.0.6"]));
        let new = build(&state(&["10.42.0.6"]));
        let t = transaction(&new, Some(&old));
        let (prelude, rest) = t.split_once("table ip skiff-proxy {").unwrap();
        assert!(prelude.contains("flush chain ip skiff-proxy service-d/web/tcp/80\n"));
        assert!(prelude.contains("flush map ip skiff-proxy service-ips\n"));
        // Dynamic sets keep their elements unless they go away.
        assert!(
            !prelude.contains("flush set ip skiff-proxy affinity-"),
            "{prelude}"
        );
        assert!(
            prelude.contains("delete chain ip skiff-proxy endpoint-d/web/tcp/80__10.42.0.5/8080\n")
        );
        assert!(
            prelude.contains("delete set ip skiff-proxy affinity-d/web/tcp/80__10.42.0.5/8080\n")
        );
        assert!(
            !prelude
                .lines()
                .any(|l| l.starts_with("delete") && l.contains("10.42.0.6")),
            "{prelude}"
        );
        // Flushes come before deletes, and the table is declared in full.
        assert!(prelude.rfind("flush ").unwrap() < prelude.find("delete ").unwrap());
        assert!(!prelude.contains("delete table"), "{prelude}");
        assert!(rest.contains("chain endpoint-d/web/tcp/80__10.42.0.6/8080 {"));
    }
}
