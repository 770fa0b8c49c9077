//! A throwaway PostgreSQL cluster for tests: `initdb` into a temp directory, `postgres` on a
//! free port of 127.0.0.1 (as the `postgres` OS user when the tests run as root, since
//! PostgreSQL refuses to run as root), one per test process, killed when the process exits.
//!
//! Tests that need it call [`cluster`]; when the server binaries are missing it panics with
//! what to install (`.ci/run` installs Debian's `postgresql`). Each test makes its own database
//! ([`Cluster::database`]), so tests run in parallel without seeing each other.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The superuser the cluster is created with.
pub const ADMIN: &str = "sqlmatic_admin";
/// A login role with no privileges of its own; tests grant it `SELECT` per database.
pub const READER: &str = "sqlmatic_ro";
/// A login role that tests let write (a read-only target must refuse to use it).
pub const WRITER: &str = "sqlmatic_writer";

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    base: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The cluster of this test process, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| Cluster::start().unwrap_or_else(|e| panic!("{e}")))
}

/// Where `initdb` and `postgres` are: `SQLMATIC_PG_BIN`, Debian's `/usr/lib/postgresql/<v>/bin`
/// (newest first), or `PATH`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("SQLMATIC_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).find(|d| d.join("initdb").exists()));
    found.flatten().ok_or_else(|| {
        "PostgreSQL server binaries (initdb, postgres) are not installed, so the PostgreSQL tests \
         cannot run: `apt-get install postgresql` (.ci/run installs it), or point SQLMATIC_PG_BIN \
         at the directory holding initdb"
            .to_owned()
    })
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn running_as_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}

/// A command run as the `postgres` OS user when we are root (PostgreSQL refuses root), killed
/// when the thread that started it ends.
fn as_server_user(program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    if running_as_root() {
        cmd.args(["--reuid=postgres", "--regid=postgres", "--clear-groups"]);
    }
    cmd.args(["--pdeathsig=KILL", "--"]).arg(program);
    cmd
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let bin = bin_dir()?;
        let base = std::env::temp_dir().join(format!("sqlmatic-pg-{}", std::process::id()));
        remove_stale_clusters();
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        if running_as_root() {
            let ids = output(Command::new("id").args(["-u", "postgres"]))
                .and_then(|u| Ok((u, output(Command::new("id").args(["-g", "postgres"]))?)))
                .map_err(|e| format!("running as root needs the `postgres` OS user: {e}"))?;
            let uid: u32 = ids.0.trim().parse().map_err(|e| format!("uid: {e}"))?;
            let gid: u32 = ids.1.trim().parse().map_err(|e| format!("gid: {e}"))?;
            std::os::unix::fs::chown(&base, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", base.display()))?;
        }
        let data = base.join("data");
        output(
            as_server_user(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", ADMIN, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
                .stdin(Stdio::null()),
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let mut server = as_server_user(&bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&base)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(base.join("server.log")).map_err(|e| e.to_string())?,
            ));
        // the thread that spawns the server lives as long as the process (it waits for the
        // server), so `--pdeathsig` ends the server exactly when the test process ends
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || match server.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(()));
                    let _ = child.wait();
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start postgres: {e}")));
                }
            })
            .map_err(|e| e.to_string())?;
        rx.recv().map_err(|e| e.to_string())??;
        let cluster = Cluster { port, bin, base };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match cluster.try_psql("postgres", "SELECT 1") {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    let log = std::fs::read_to_string(cluster.base.join("server.log"))
                        .unwrap_or_default();
                    return Err(format!("PostgreSQL did not start: {e}\n{log}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        cluster
            .psql("postgres", &format!("CREATE ROLE {READER} LOGIN; CREATE ROLE {WRITER} LOGIN;"));
        Ok(cluster)
    }

    fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let psql =
            if self.bin.join("psql").exists() { self.bin.join("psql") } else { "psql".into() };
        output(
            Command::new(psql)
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
                .args(["-p", &self.port.to_string(), "-U", ADMIN, "-d", database, "-c", sql])
                .env("PGCONNECT_TIMEOUT", "5")
                .stdin(Stdio::null()),
        )
    }

    /// Runs `sql` as the superuser in `database`; panics with PostgreSQL's message on error.
    /// Returns what `psql -At` printed.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.try_psql(database, sql).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A fresh database named `name` (dropped first if it exists), with `sql` run in it as the
    /// superuser, then `ANALYZE`d.
    pub fn database(&self, name: &str, sql: &str) {
        self.psql("postgres", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        if !sql.trim().is_empty() {
            self.psql(name, sql);
        }
        self.psql(name, "ANALYZE");
    }

    /// The URL of `database` for `role` (the cluster trusts local connections: no password).
    pub fn url(&self, role: &str, database: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/{database}?sslmode=disable", self.port)
    }

    /// A checksum of every row of every table in `schemas` of `database`, to show nothing
    /// changed.
    pub fn checksum(&self, database: &str) -> String {
        self.psql(
            database,
            "DO $$ DECLARE r record; acc text := ''; part text; BEGIN \
               FOR r IN SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                        WHERE c.relkind IN ('r','m','p') AND n.nspname NOT IN ('pg_catalog','information_schema') \
                          AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2 LOOP \
                 EXECUTE format('SELECT coalesce(md5(string_agg(t::text, ''|'' ORDER BY t::text)), ''-'') FROM %I.%I t', r.nspname, r.relname) INTO part; \
                 acc := acc || r.nspname || '.' || r.relname || '=' || part || ';'; \
               END LOOP; \
               PERFORM set_config('sqlmatic.checksum', md5(acc), false); END $$; \
             SELECT current_setting('sqlmatic.checksum') \
               || (SELECT count(*) FROM pg_class WHERE relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)) \
               || (SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%')",
        )
        .trim()
        .to_owned()
    }
}

/// Clusters left by test processes that no longer run (killed before they could clean up).
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("sqlmatic-pg-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A target over `database` of the test cluster, connecting as `role`.
pub fn spec(name: &str, role: &str, database: &str) -> crate::TargetSpec {
    crate::TargetSpec {
        url: Some(cluster().url(role, database)),
        path: None,
        ..crate::TargetSpec::read_only(name, "")
    }
}

/// Grants [`READER`] what a read-only role needs on every table of `schemas` of `database`.
pub fn grant_reader(database: &str, schemas: &[&str]) {
    let c = cluster();
    for s in schemas {
        c.psql(
            database,
            &format!(
                "GRANT USAGE ON SCHEMA {s} TO {READER}; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {READER};"
            ),
        );
    }
}
