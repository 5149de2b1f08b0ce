//! `skiff token create|list|delete`: bootstrap tokens for joining nodes,
//! as `kubeadm token` manages them (Secrets `bootstrap-token-<id>` in
//! kube-system).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use skiff_controllers::bootstrap_tokens::{NAMESPACE, SECRET_TYPE, Token};

const DEFAULT_GROUP: &str = "system:bootstrappers:skiff:default-node-token";

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token and print it, with the command that joins
    /// a node with it.
    Create(CreateArgs),
    /// List the bootstrap tokens.
    List(KubeconfigArg),
    /// Delete a bootstrap token (by id or whole token).
    Delete {
        #[command(flatten)]
        kubeconfig: KubeconfigArg,
        token: String,
    },
}

#[derive(clap::Args)]
pub struct KubeconfigArg {
    /// Credentials and address of the API server (default: `$KUBECONFIG`).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub kubeconfig: KubeconfigArg,
    /// How long the token is valid (Go duration: `24h`, `30m`; `0`: forever).
    #[arg(long, default_value = "24h")]
    pub ttl: String,
    /// A note shown by `skiff token list`.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Extra groups the token authenticates as (each `system:bootstrappers:...`).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_GROUP)]
    pub groups: Vec<String>,
}

/// `n` random characters from `[a-z0-9]`, unbiased.
fn random_chars(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in uuid::Uuid::new_v4().into_bytes() {
            // 252 = 7 * 36: larger bytes would favour the first letters.
            if b < 252 && out.len() < n {
                out.push(ALPHABET[usize::from(b % 36)] as char);
            }
        }
    }
    out
}

pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => create(args).await,
        TokenCommand::List(args) => list(args).await,
        TokenCommand::Delete { kubeconfig, token } => {
            let client = crate::server::client_from(kubeconfig.kubeconfig.as_deref()).await?;
            let id = token.split('.').next().unwrap_or_default();
            Api::<Secret>::namespaced(client, NAMESPACE)
                .delete(&format!("bootstrap-token-{id}"), &DeleteParams::default())
                .await
                .with_context(|| format!("deleting bootstrap token {id}"))?;
            println!("bootstrap token \"{id}\" deleted");
            Ok(())
        }
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    for g in &args.groups {
        anyhow::ensure!(
            g.starts_with("system:bootstrappers:"),
            "--groups: {g:?} must start with system:bootstrappers:"
        );
    }
    let ttl =
        crate::agent::parse_go_duration(&args.ttl).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
    let client = crate::server::client_from(args.kubeconfig.kubeconfig.as_deref()).await?;
    let id = random_chars(6);
    let secret = random_chars(16);
    let mut data = BTreeMap::from([
        ("token-id".to_owned(), id.clone()),
        ("token-secret".to_owned(), secret.clone()),
        (
            "usage-bootstrap-authentication".to_owned(),
            "true".to_owned(),
        ),
        ("usage-bootstrap-signing".to_owned(), "true".to_owned()),
        ("auth-extra-groups".to_owned(), args.groups.join(",")),
    ]);
    if !ttl.is_zero() {
        let expires = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::try_from(ttl).context("--ttl is too long")?)
            .context("--ttl is too long")?;
        data.insert("expiration".to_owned(), expires.to_string());
    }
    if !args.description.is_empty() {
        data.insert("description".to_owned(), args.description.clone());
    }
    let object = Secret {
        metadata: ObjectMeta {
            name: Some(format!("bootstrap-token-{id}")),
            namespace: Some(NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some(SECRET_TYPE.to_owned()),
        string_data: Some(data),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &object)
        .await
        .context("creating the bootstrap token")?;
    let token = format!("{id}.{secret}");
    println!("{token}");
    let info = Api::<ConfigMap>::namespaced(client, "kube-public")
        .get("cluster-info")
        .await
        .context("reading kube-public/cluster-info")?;
    let kubeconfig = info
        .data
        .as_ref()
        .and_then(|d| d.get("kubeconfig"))
        .context("cluster-info has no kubeconfig")?;
    let parsed =
        kube::config::Kubeconfig::from_yaml(kubeconfig).context("cluster-info's kubeconfig")?;
    let cluster = parsed
        .clusters
        .iter()
        .find_map(|c| c.cluster.clone())
        .context("cluster-info names no cluster")?;
    let ca = {
        use base64::Engine;
        let data = cluster.certificate_authority_data.unwrap_or_default();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data.trim())?)?
    };
    let hash = skiff_kubelet::tls_bootstrap::ca_hash::of_pem(&ca).context("cluster-info's CA")?;
    eprintln!(
        "\nJoin a node with:\n\n    skiff agent --server {} --token {token} --ca-cert-hash {hash}\n",
        cluster.server.unwrap_or_default()
    );
    Ok(())
}

async fn list(args: KubeconfigArg) -> anyhow::Result<()> {
    let client = crate::server::client_from(args.kubeconfig.as_deref()).await?;
    let secrets = Api::<Secret>::namespaced(client, NAMESPACE)
        .list(&ListParams::default().fields(&format!("type={SECRET_TYPE}")))
        .await
        .context("listing bootstrap tokens")?;
    println!(
        "{:<24} {:<22} {:<36} DESCRIPTION",
        "TOKEN", "EXPIRES", "USAGES"
    );
    for s in &secrets.items {
        let Some(token) = Token::from_secret(s) else {
            eprintln!(
                "skipping {}: not a well-formed bootstrap token",
                s.name_any()
            );
            continue;
        };
        let expires = token
            .expiration
            .map_or_else(|| "<forever>".to_owned(), |e| e.to_string());
        println!(
            "{:<24} {:<22} {:<36} {}",
            format!("{}.<secret>", token.id),
            expires,
            token.usages.join(","),
            token.description.unwrap_or_default()
        );
    }
    Ok(())
}
