//! `strata push IMAGE REF`, `strata login` and `strata logout`.

use std::io::Read;

use base64::Engine as _;
use strata_engine::export::push::PushStats;
use strata_engine::image::Descriptor;
use strata_engine::layer::Compression;
use strata_engine::registry::{docker_config_dir, Client, Reference};
use strata_engine::session::{self, Pushed};
use strata_engine::store::Store;

use super::{CliError, RegistryArgs};

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// An image of the store (a name `strata images` lists).
    pub image: String,
    /// Where to push it: `registry/repository[:tag]`.
    pub reference: String,
    /// Compression of the pushed layer blobs (the store keeps layers uncompressed).
    #[arg(long, value_enum, default_value_t = super::build::LayerCompression::Gzip)]
    pub compression: super::build::LayerCompression,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(store: &Store, args: PushArgs) -> Result<(), CliError> {
    let target = super::reference("push", &args.reference)?;
    let client = args.registry.client();
    push_image(store, &client, &args.image, &target, args.compression.engine())
}

/// Pushes a stored image by name.
pub fn push_image(
    store: &Store,
    client: &Client,
    image: &str,
    target: &Reference,
    compression: Compression,
) -> Result<(), CliError> {
    let desc = store
        .image(image)?
        .ok_or_else(|| CliError::Usage(format!("no image `{image}` in the store (see `strata images`)")))?;
    push_stored(store, client, &desc, target, compression)
}

/// Pushes the image a manifest of the store describes, its layers in
/// `compression`, and prints `pushed REF@DIGEST` with what the push did.
pub fn push_stored(
    store: &Store,
    client: &Client,
    desc: &Descriptor,
    target: &Reference,
    compression: Compression,
) -> Result<(), CliError> {
    print_pushed(&session::push(store, client, desc, target, compression)?);
    Ok(())
}

/// `pushed REF@DIGEST (uploaded …)`.
pub fn print_pushed(pushed: &Pushed) {
    crate::outln!(
        "pushed {}@{} ({})",
        pushed.reference,
        pushed.digest,
        summary(&pushed.stats)
    );
}

/// `uploaded 2 blobs (3.1MB), mounted 1, 4 already there`.
pub fn summary(stats: &PushStats) -> String {
    format!(
        "uploaded {} blobs ({}), mounted {}, {} already there",
        stats.uploaded,
        super::human(stats.bytes_uploaded),
        stats.mounted,
        stats.present
    )
}

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// The registry, `host[:port]`.
    pub registry: String,
    #[arg(long, short = 'u')]
    pub username: String,
    /// The password (prefer `--password-stdin`: arguments show in `ps`).
    #[arg(long, short = 'p', conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Reach the registry over plain HTTP (loopback ones always are).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
}

fn config_path() -> Result<std::path::PathBuf, CliError> {
    docker_config_dir()
        .map(|d| d.join("config.json"))
        .ok_or_else(|| CliError::Usage("neither DOCKER_CONFIG nor HOME is set".into()))
}

fn read_config(path: &std::path::Path) -> Result<serde_json::Value, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| CliError::Usage(format!("{} is not valid JSON: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(CliError::Usage(format!("cannot read {}: {e}", path.display()))),
    }
}

fn write_config(path: &std::path::Path, config: &serde_json::Value) -> Result<(), CliError> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| CliError::Usage(format!("cannot create {}: {e}", dir.display())))?;
    let text = serde_json::to_string_pretty(config).expect("JSON values serialize") + "\n";
    let tmp = dir.join(".config.json.strata-tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        })
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
}

pub fn login(args: LoginArgs) -> Result<(), CliError> {
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut p = String::new();
            std::io::stdin()
                .read_to_string(&mut p)
                .map_err(|e| CliError::Usage(format!("reading the password from stdin: {e}")))?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => return Err(CliError::Usage("give the password with --password-stdin or -p".into())),
    };
    let host = &args.registry;
    let client = Client::with_credentials(args.insecure_registries.clone(), &args.username, &password);
    client.ping(host).map_err(strata_engine::Error::from)?;
    let path = config_path()?;
    let mut config = read_config(&path)?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", args.username));
    if !config["auths"].is_object() {
        config["auths"] = serde_json::json!({});
    }
    config["auths"][host] = serde_json::json!({ "auth": auth });
    write_config(&path, &config)?;
    crate::outln!("logged in to {host} (credentials in {})", path.display());
    Ok(())
}

pub fn logout(host: &str) -> Result<(), CliError> {
    let path = config_path()?;
    let mut config = read_config(&path)?;
    let removed = config["auths"]
        .as_object_mut()
        .and_then(|auths| auths.remove(host))
        .is_some();
    if !removed {
        return Err(CliError::Usage(format!("not logged in to {host}")));
    }
    write_config(&path, &config)?;
    crate::outln!("logged out of {host}");
    Ok(())
}
