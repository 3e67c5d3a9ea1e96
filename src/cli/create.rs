//! `peapod create configmap|secret generic|secret docker-registry|secret tls NAME`: the object
//! built as kubectl builds it ([`super::create_sources`]), checked exactly as a manifest's
//! (`manifest::check_object_value`), stored with `PutMode::Create`; kubectl's output
//! (`configmap/x created`, `--dry-run=client`, `-o yaml|json|name`) and its errors
//! (`error: failed to create configmap: configmaps "x" already exists`).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use super::create_sources::{self as sources, ConfigMapData, SecretData, Sink};
use super::output::{Output, Printer};
use crate::manifest::objects::{
    DOCKER_CONFIG_JSON_KEY, SECRET_TYPE_DOCKER_CONFIG_JSON, SECRET_TYPE_TLS, TLS_CERT_KEY,
    TLS_PRIVATE_KEY_KEY,
};
use crate::manifest::Object;
use crate::object::{ObjectError, ObjectStore, PutMode, StoredObject};
use crate::store::Paths;

/// kubectl's default registry for `create secret docker-registry`.
const DEFAULT_DOCKER_SERVER: &str = "https://index.docker.io/v1/";

/// What `create` makes.
#[derive(Debug, Subcommand)]
pub enum CreateWhat {
    /// Create a config map from files, directories, literal values or env files.
    #[command(visible_alias = "cm")]
    Configmap(ConfigMapArgs),
    /// Create a secret.
    Secret {
        #[command(subcommand)]
        kind: SecretKind,
    },
}

impl CreateWhat {
    /// Flags given before the generator's name (`create --dry-run=client configmap x`), which
    /// kubectl reads as the generator's own (cobra parses every flag of the line with the
    /// subcommand's): they fill the generator's where it has none.
    pub fn inherit(&mut self, dry_run: Option<String>, output: Option<Output>) {
        let common = match self {
            CreateWhat::Configmap(a) => &mut a.common,
            CreateWhat::Secret { kind } => match kind {
                SecretKind::Generic(a) => &mut a.common,
                SecretKind::DockerRegistry(a) => &mut a.common,
                SecretKind::Tls(a) => &mut a.common,
            },
        };
        if common.dry_run.is_none() {
            common.dry_run = dry_run;
        }
        if common.output.is_none() {
            common.output = output;
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SecretKind {
    /// A secret from files, directories, literal values or env files.
    Generic(GenericArgs),
    /// A secret for a container registry (`.dockerconfigjson`).
    DockerRegistry(DockerArgs),
    /// A TLS secret from a certificate and its key.
    Tls(TlsArgs),
}

/// The flags every `create` kind takes.
#[derive(Debug, Args)]
pub struct Common {
    /// NAME (exactly one).
    names: Vec<String>,
    #[arg(short, long)]
    namespace: Option<String>,
    /// none, client or server (bare `--dry-run` is client).
    #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    dry_run: Option<String>,
    /// json, yaml, name or jsonpath=TEMPLATE
    #[arg(short, long, value_parser = super::output::parse_output)]
    output: Option<Output>,
}

#[derive(Debug, Args)]
pub struct Sources {
    /// `[key=]path`: a file as one key (its basename by default), a directory as a key per file.
    #[arg(long, value_delimiter = ',')]
    from_file: Vec<String>,
    /// `key=value`
    #[arg(long)]
    from_literal: Vec<String>,
    /// A file of `KEY=value` lines.
    #[arg(long, value_delimiter = ',')]
    from_env_file: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConfigMapArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    sources: Sources,
}

#[derive(Debug, Args)]
pub struct GenericArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    sources: Sources,
    /// The secret's type (default Opaque).
    #[arg(long = "type")]
    type_: Option<String>,
}

#[derive(Debug, Args)]
pub struct DockerArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value = DEFAULT_DOCKER_SERVER)]
    docker_server: String,
    #[arg(long, default_value = "")]
    docker_username: String,
    #[arg(long, default_value = "")]
    docker_password: String,
    #[arg(long, default_value = "")]
    docker_email: String,
    /// `[key=]path` (the key defaults to `.dockerconfigjson`).
    #[arg(long, value_delimiter = ',')]
    from_file: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TlsArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value = "")]
    cert: String,
    #[arg(long, default_value = "")]
    key: String,
}

impl Common {
    /// kubectl's NameFromCommandArgs.
    fn name(&self) -> Result<String> {
        match self.names.as_slice() {
            [one] => Ok(one.clone()),
            other => bail!("exactly one NAME is required, got {}", other.len()),
        }
    }

    /// The object's metadata: the namespace only when `-n` was given, as kubectl does.
    fn meta(&self) -> Result<ObjectMeta> {
        Ok(ObjectMeta {
            name: Some(self.name()?),
            namespace: self.namespace.clone(),
            ..Default::default()
        })
    }
}

impl Sources {
    fn check(&self) -> Result<()> {
        let others = !self.from_file.is_empty() || !self.from_literal.is_empty();
        if !self.from_env_file.is_empty() && others {
            bail!("from-env-file cannot be combined with from-file or from-literal");
        }
        Ok(())
    }
}

/// `peapod create <kind> ...`.
pub fn run(paths: &Paths, what: CreateWhat) -> Result<i32> {
    match what {
        CreateWhat::Configmap(a) => {
            a.common.name()?;
            a.sources.check()?;
            let mut data = ConfigMapData {
                name: a.common.name()?,
                ..Default::default()
            };
            // kubectl's order for config maps: files, literals, env files.
            sources::add_files(&mut data, &a.sources.from_file)?;
            sources::add_literals(&mut data, &a.sources.from_literal)?;
            sources::add_env_files(&mut data, &a.sources.from_env_file, "config")?;
            let cm = ConfigMap {
                metadata: a.common.meta()?,
                data: Some(data.data).filter(|d| !d.is_empty()),
                binary_data: Some(data.binary).filter(|d| !d.is_empty()),
                ..Default::default()
            };
            finish(paths, &a.common, cm, "failed to create configmap: ")
        }
        CreateWhat::Secret { kind } => secret(paths, kind),
    }
}

fn secret(paths: &Paths, kind: SecretKind) -> Result<i32> {
    let new =
        |meta: ObjectMeta, type_: Option<String>, data: BTreeMap<String, ByteString>| Secret {
            metadata: meta,
            type_: type_.filter(|t| !t.is_empty()),
            data: Some(data).filter(|d| !d.is_empty()),
            ..Default::default()
        };
    match kind {
        SecretKind::Generic(a) => {
            a.common.name()?;
            a.sources.check()?;
            let mut data = SecretData::default();
            // kubectl's order for secrets: literals, files, env files.
            sources::add_literals(&mut data, &a.sources.from_literal)?;
            sources::add_files(&mut data, &a.sources.from_file)?;
            sources::add_env_files(&mut data, &a.sources.from_env_file, "secret")?;
            let s = new(a.common.meta()?, a.type_, data.data);
            finish(paths, &a.common, s, "failed to create secret: ")
        }
        SecretKind::DockerRegistry(a) => {
            a.common.name()?;
            let missing = a.docker_username.is_empty()
                || a.docker_password.is_empty()
                || a.docker_server.is_empty();
            if a.from_file.is_empty() && missing {
                bail!("either --from-file or the combination of --docker-username, --docker-password and --docker-server is required");
            }
            let mut data = SecretData::default();
            if a.from_file.is_empty() {
                let json = sources::docker_config_json(
                    &a.docker_server,
                    &a.docker_username,
                    &a.docker_password,
                    &a.docker_email,
                );
                data.add(DOCKER_CONFIG_JSON_KEY, json.into_bytes(), false)?;
            } else {
                let files: Vec<String> = a
                    .from_file
                    .iter()
                    .map(|f| match f.contains('=') {
                        true => f.clone(),
                        false => format!("{DOCKER_CONFIG_JSON_KEY}={f}"),
                    })
                    .collect();
                sources::add_files(&mut data, &files)?;
            }
            let type_ = Some(SECRET_TYPE_DOCKER_CONFIG_JSON.to_string());
            let s = new(a.common.meta()?, type_, data.data);
            // This one has no colon in kubectl.
            finish(paths, &a.common, s, "failed to create secret ")
        }
        SecretKind::Tls(a) => {
            a.common.name()?;
            if a.key.is_empty() || a.cert.is_empty() {
                bail!("key and cert must be specified");
            }
            let read = |path: &str| {
                std::fs::read(path).map_err(|e| {
                    let why = sources::go_io_error(Some("open"), path, &e);
                    anyhow!("Cannot read file {path}, {why}")
                })
            };
            let (cert, key) = (read(&a.cert)?, read(&a.key)?);
            sources::check_tls_pair(&cert, &key)?;
            let data = BTreeMap::from([
                (TLS_CERT_KEY.to_string(), ByteString(cert)),
                (TLS_PRIVATE_KEY_KEY.to_string(), ByteString(key)),
            ]);
            let s = new(a.common.meta()?, Some(SECRET_TYPE_TLS.to_string()), data);
            finish(paths, &a.common, s, "failed to create secret: ")
        }
    }
}

/// Checks and stores the object (unless `--dry-run=client`) and prints it as kubectl does.
fn finish<T: StoredObject>(paths: &Paths, common: &Common, object: T, failed: &str) -> Result<i32>
where
    Object: TryInto<T>,
{
    let dry_run = super::dry_run_suffix(common.dry_run.as_deref())?;
    let shown = if dry_run == Some(super::DRY_RUN_CLIENT) {
        object
    } else {
        let name = object.metadata().name.clone().unwrap_or_default();
        let invalid = |causes| ObjectError::Invalid {
            kind: T::KIND.to_string(),
            name: name.clone(),
            causes,
        };
        let value = serde_json::to_value(&object)?;
        let checked = match crate::manifest::check_object_value(&value) {
            Ok(o) => o
                .try_into()
                .map_err(|_| anyhow!("{failed}{} is not a {}", name, T::KIND))?,
            Err(problems) => {
                let causes = problems.iter().map(|p| p.cause()).collect();
                bail!("{failed}{}", invalid(causes).status_message());
            }
        };
        if dry_run.is_some() {
            checked
        } else {
            ObjectStore::new(paths)
                .put(checked, PutMode::Create)
                .map_err(|e| anyhow!("{failed}{}", e.status_message()))?
                .0
        }
    };
    match &common.output {
        None => {
            let name = shown.metadata().name.clone().unwrap_or_default();
            let suffix = dry_run.map(|d| format!(" {d}")).unwrap_or_default();
            println!("{}/{name} created{suffix}", T::SINGULAR);
        }
        Some(Output::Name) => {
            let name = shown.metadata().name.clone().unwrap_or_default();
            println!("{}/{name}", T::SINGULAR);
        }
        Some(Output::Wide) => bail!("unable to match a printer suitable for the output format \"wide\", allowed formats are: go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,yaml"),
        Some(o) => print!(
            "{}",
            Printer::from_flags(Some(o), None)?.render(
                vec![serde_json::to_value(&shown)?],
                true,
                false
            )?
        ),
    }
    Ok(0)
}
