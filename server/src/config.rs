//! The settings every `lianxin` command shares, from the command line and the
//! environment (the `lianxin` binary parses them once and passes them explicitly).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Options of `lianxin serve`.
#[derive(Clone, Debug, Default, Args)]
pub struct ServeArgs {
    /// Seed a demo county (units, people, rooms, petitions in different
    /// states) if the database has none, and print ready-to-use credentials.
    #[arg(long)]
    pub demo: bool,
    /// How many documents the server keeps loaded; least recently used ones
    /// are evicted, so memory does not grow with the number of documents.
    #[arg(long, env = "LIANXIN_CACHE_DOCS", default_value_t = crate::docs::DEFAULT_CACHE_DOCS)]
    pub cache_docs: usize,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create or update units, users and memberships from a JSON or TOML file.
    Import {
        /// The file; `.toml` is read as TOML, anything else as JSON.
        file: PathBuf,
    },
    /// Print an access token for a user.
    MintToken {
        /// The user id.
        #[arg(long)]
        user: String,
        /// Lifetime, e.g. `900`, `15m`, `12h`, `7d` (seconds without a unit).
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        ttl: Duration,
    },
    /// Revoke every session and token of a user.
    Revoke {
        /// The user id.
        #[arg(long)]
        user: String,
    },
    /// Make a new access-token signing key and retire the one signing now:
    /// tokens it signed stay valid until they expire (within
    /// `--signing-key-retention`); running servers sign with the new key
    /// within a minute. Prints the new key id.
    RotateSigningKey {
        /// Also withdraw every earlier key: tokens they signed are refused
        /// at once (a key that may have leaked).
        #[arg(long)]
        withdraw_previous: bool,
    },
    /// Read every stored document back: each must rebuild from its snapshot
    /// and changes with nothing missing, and its projection rows must equal a
    /// recomputation under the stored clock rules (plus SQLite's integrity check). Prints `key=value`
    /// lines; exits non-zero if anything is wrong.
    Check,
}

/// Settings shared by `serve` and `admin`.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Directory for the SQLite database, the generated JWT secret and other state.
    #[arg(long, env = "LIANXIN_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,

    /// Database URL: `postgres://…` for PostgreSQL or `sqlite:PATH`; defaults
    /// to `sqlite:<data-dir>/lianxin.sqlite`.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "LIANXIN_LISTEN", default_value = "127.0.0.1:8470", global = true)]
    pub listen: SocketAddr,

    /// The server secret: seals the access-token signing keys kept in the
    /// database and keys the one-time-code hashes. If unset, one is generated
    /// on first start and kept in `<data-dir>/jwt-secret` (mode 0600).
    #[arg(long, env = "LIANXIN_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    /// The name this server's access tokens carry as their issuer (`iss`) and
    /// its key set (`GET /api/auth/keys`) publishes, e.g. `county-a`.
    #[arg(long, env = "LIANXIN_ISSUER", default_value = "lianxin", global = true)]
    pub issuer: String,

    /// How long a retired signing key still verifies the tokens it signed
    /// (`lianxin admin rotate-signing-key`); longer than any token lives.
    #[arg(long, env = "LIANXIN_SIGNING_KEY_RETENTION", default_value = "7d", value_parser = parse_duration, global = true)]
    pub signing_key_retention: Duration,

    /// Other tiers whose access tokens this server accepts: the URL of each
    /// one's key set (`https://county.example/api/auth/keys`), comma-separated.
    /// A token naming a key not known yet makes the server fetch them again.
    #[arg(long, env = "LIANXIN_TRUST_ISSUER_URLS", value_delimiter = ',', global = true)]
    pub trust_issuer_url: Vec<String>,

    /// Other tiers whose access tokens this server accepts, as files holding
    /// their key sets (what `GET /api/auth/keys` answers), comma-separated.
    #[arg(long, env = "LIANXIN_TRUSTED_KEYS_FILES", value_delimiter = ',', global = true)]
    pub trusted_keys_file: Vec<PathBuf>,

    /// SMS gateway webhook that receives `{phone, code, purpose}` as JSON.
    /// Without it the server runs in dev mode and writes codes to the log.
    #[arg(long, env = "LIANXIN_SMS_WEBHOOK_URL", global = true)]
    pub sms_webhook_url: Option<String>,

    /// Timeout for one SMS gateway request.
    #[arg(long, env = "LIANXIN_SMS_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub sms_timeout: Duration,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "LIANXIN_BODY_LIMIT", default_value_t = 1024 * 1024, global = true)]
    pub body_limit: usize,

    /// Time limit for one HTTP request.
    #[arg(long, env = "LIANXIN_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub request_timeout: Duration,

    /// How long a client may take to send a request's headers; also how
    /// long an idle keep-alive connection waits for its next request.
    /// WebSockets, once open, are not subject to it.
    #[arg(long, env = "LIANXIN_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub header_read_timeout: Duration,

    /// Open connections (WebSockets included) one IP address may hold;
    /// further ones are closed as soon as they are accepted. Villages behind
    /// one carrier NAT share an address, hence the generous default.
    #[arg(long, env = "LIANXIN_MAX_CONNECTIONS_PER_IP", default_value_t = 512, global = true)]
    pub max_connections_per_ip: usize,

    /// Documents the server lacks that one `/sync` connection may offer
    /// with `sync` at once while they are not yet created (each costs a sync
    /// state until its changes arrive); past it the connection is closed
    /// with a reason.
    #[arg(long, env = "LIANXIN_MAX_OFFERED_DOCS", default_value_t = 256, global = true)]
    pub max_offered_docs: usize,

    /// Allow cross-origin requests from any origin (for a web console served elsewhere).
    #[arg(long, env = "LIANXIN_CORS_PERMISSIVE", global = true)]
    pub cors_permissive: bool,

    /// Let a phone number that passes one-time-code sign-in without an
    /// account become a new resident.
    #[arg(long, env = "LIANXIN_RESIDENT_SIGNUP", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub resident_signup: bool,

    /// Push-gateway webhook for notifications to people without a live
    /// connection: receives `{key, user, kind, text, doc, urgent, cursor}` as JSON.
    #[arg(long, env = "LIANXIN_PUSH_WEBHOOK_URL", global = true)]
    pub push_webhook_url: Option<String>,

    /// SMS-gateway webhook for urgent notifications (overdue clocks,
    /// escalations, supervision, anti-fraud notices): receives `{key, user, phone, text}`.
    #[arg(long, env = "LIANXIN_NOTIFY_SMS_WEBHOOK_URL", global = true)]
    pub notify_sms_webhook_url: Option<String>,

    /// How long a push waits for a live connection to deliver its notification first.
    #[arg(long, env = "LIANXIN_PUSH_DELAY", default_value = "30s", value_parser = parse_duration, global = true)]
    pub push_delay: Duration,

    /// Gateway attempts before a push or text message goes to the dead letters.
    #[arg(long, env = "LIANXIN_OUTBOX_MAX_ATTEMPTS", default_value_t = 8, global = true)]
    pub outbox_max_attempts: u32,

    /// The first retry of a failed push waits this long; each further one twice as long (at most 1h).
    #[arg(long, env = "LIANXIN_OUTBOX_BACKOFF", default_value = "30s", value_parser = parse_duration, global = true)]
    pub outbox_backoff: Duration,

    /// Auto-escalation policy (JSON, see `sync_core::notify::EscalationPolicy`); without it
    /// overdue petitions notify but never escalate on their own.
    #[arg(long, env = "LIANXIN_ESCALATION_POLICY", global = true)]
    pub escalation_policy: Option<PathBuf>,

    /// How often the scheduler sweeps clocks, hands over shifts and works the outbox.
    #[arg(long, env = "LIANXIN_SCHEDULER_EVERY", default_value = "15s", value_parser = parse_duration, global = true)]
    pub scheduler_every: Duration,

    /// A document's changes are folded into a new snapshot once this many
    /// are stored since its last one (or once they outweigh 64 KiB or the
    /// snapshot). Lower values keep loads fast at the cost of more rewrites.
    #[arg(long, env = "LIANXIN_COMPACT_AFTER_CHANGES", default_value_t = crate::docs::COMPACT_AFTER_CHANGES, global = true)]
    pub compact_after_changes: usize,

    /// Makes this server a station of the server above it (its base URL,
    /// `http://county:8080`): it replicates its jurisdiction from there and
    /// relays its people's changes up (see `lianxin_server::station`).
    #[arg(long, env = "LIANXIN_UPSTREAM", global = true)]
    pub upstream: Option<String>,

    /// The station server's account at the upstream server (a user holding
    /// the `station_server` role in the station's unit there).
    #[arg(long, env = "LIANXIN_UPSTREAM_LOGIN", global = true)]
    pub upstream_login: Option<String>,

    /// That account's password (prefer the environment variable).
    #[arg(long, env = "LIANXIN_UPSTREAM_PASSWORD", hide_env_values = true, global = true)]
    pub upstream_password: Option<String>,

    /// How often a station pulls from upstream when nothing changes locally
    /// (a local change is pushed at once).
    #[arg(long, env = "LIANXIN_UPSTREAM_EVERY", default_value = "10s", value_parser = parse_duration, global = true)]
    pub upstream_every: Duration,

    /// The longest a station waits before trying a failed uplink again: the
    /// wait doubles from half a second up to this, jittered. A county on the
    /// same network as its stations can retry sooner than one over a hill.
    #[arg(long, env = "LIANXIN_UPSTREAM_RETRY_MAX", default_value = "60s", value_parser = parse_duration, global = true)]
    pub upstream_retry_max: Duration,

    /// Log filter in `tracing` syntax, e.g. `info,lianxin_server=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log: String,
}

impl Config {
    /// The uplink this configuration asks for, if `--upstream` is set.
    pub fn upstream(&self) -> Result<Option<crate::station::UpstreamConfig>, String> {
        let Some(url) = &self.upstream else { return Ok(None) };
        let (Some(login), Some(password)) = (&self.upstream_login, &self.upstream_password) else {
            return Err("--upstream needs --upstream-login and --upstream-password (LIANXIN_UPSTREAM_PASSWORD)".into());
        };
        if self.escalation_policy.is_some() {
            // Each petition's auto-escalation runs at one tier: the one above,
            // which holds every petition its stations hold.
            return Err("a station does not auto-escalate (the server above does): drop --escalation-policy".into());
        }
        let mut config = crate::station::UpstreamConfig::new(url.clone(), login.clone(), password.clone());
        config.every = self.upstream_every;
        let max_ms = u64::try_from(self.upstream_retry_max.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        config.backoff.max_ms = max_ms;
        config.backoff.base_ms = config.backoff.base_ms.min(max_ms);
        Ok(Some(config))
    }

    /// The configuration `lianxin serve` gets with no flags (the
    /// environment still applies), rooted at `data_dir`. For tests and
    /// embedding.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Result<Self, clap::Error> {
        /// The settings alone, as the command line gives them.
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        let mut config = Only::try_parse_from(["lianxin"])?.config;
        config.data_dir = data_dir.into();
        Ok(config)
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite:{}", self.sqlite_path().display()),
        }
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("lianxin.sqlite")
    }

    pub fn jwt_secret_path(&self) -> PathBuf {
        self.data_dir.join("jwt-secret")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The notification settings in effect; reads the escalation policy file.
    pub fn notify_settings(&self) -> Result<crate::notify::NotifySettings, String> {
        let escalation = match &self.escalation_policy {
            None => sync_core::notify::EscalationPolicy::default(),
            Some(path) => {
                let json = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read escalation policy {}: {e}", path.display()))?;
                sync_core::notify::EscalationPolicy::from_json(&json)
                    .map_err(|e| format!("escalation policy {}: {e}", path.display()))?
            }
        };
        Ok(crate::notify::NotifySettings {
            push_url: self.push_webhook_url.clone(),
            sms_url: self.notify_sms_webhook_url.clone(),
            push_delay: self.push_delay,
            max_attempts: self.outbox_max_attempts.max(1),
            backoff_base: self.outbox_backoff,
            escalation,
            tick_every: self.scheduler_every.max(Duration::from_millis(100)),
            ..crate::notify::NotifySettings::default()
        })
    }
}

/// Parses `90`, `90s`, `15m`, `12h`, `7d` or `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 15m, 12h, 7d"))?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration {s:?} is too long"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(format!("invalid duration unit in {s:?}: use ms, s, m, h or d")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn a_station_needs_its_account_and_never_auto_escalates() {
        let mut config = Config::with_data_dir("/tmp/lianxin-config-test").expect("defaults parse");
        assert!(config.upstream().expect("no upstream is fine").is_none());
        config.upstream = Some("http://county:8470/".into());
        assert!(config.upstream().is_err(), "an upstream without an account");
        config.upstream_login = Some("station-east".into());
        config.upstream_password = Some("secret".into());
        let up = config.upstream().expect("complete").expect("a station");
        assert_eq!(up.url, "http://county:8470");
        assert_eq!((up.backoff.base_ms, up.backoff.max_ms), (500, 60_000));
        config.upstream_retry_max = Duration::from_millis(200);
        let up = config.upstream().expect("complete").expect("a station");
        assert_eq!((up.backoff.base_ms, up.backoff.max_ms), (200, 200));
        config.escalation_policy = Some("policy.json".into());
        let err = config.upstream().expect_err("two tiers would escalate");
        assert!(err.contains("escalat"), "{err}");
    }
}
