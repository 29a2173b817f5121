//! Process lifecycle: load config, bind the listeners, serve; reload on
//! SIGHUP; drain on SIGTERM/SIGINT.
//!
//! [`Server`] is what `clawgate run` and the integration tests start, so
//! tests exercise the same wiring as production, on ephemeral ports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{self, ConfigError};
use crate::drain::Drain;
use crate::net::listener;
use crate::observe::access_log::AccessLog;
use crate::runtime::admin;
use crate::runtime::reload;
use crate::state::State;

/// How long connections get, once the drain deadline cut their streams,
/// to send the reset or close that tells their clients.
const CUT_GRACE: Duration = Duration::from_secs(1);

pub struct Server {
    pub state: Arc<State>,
    /// Where members connect (the bound address, port resolved).
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    dir: PathBuf,
    stop: watch::Sender<bool>,
    /// The admin listener outlives the drain, so /readyz can say "draining".
    admin_stop: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
    graceful: Drain,
}

#[derive(Debug)]
pub enum StartError {
    Config(ConfigError),
    Bind {
        what: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
    Io(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Bind { what, addr, error } => write!(
                f,
                "cannot listen on {addr} ({what}): {error}; is another process using it? change the address in clawgate.toml"
            ),
            StartError::Io(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for StartError {}

impl Server {
    /// Load `dir`, bind both listeners and start serving.
    pub async fn start(dir: &Path) -> Result<Server, StartError> {
        let snap = config::load(dir).map_err(StartError::Config)?;
        Self::start_loaded(dir, snap).await
    }

    /// Serve `snap`, loaded from `dir` by the caller (`restore --verify`
    /// moves the listeners to ephemeral loopback ports first).
    pub async fn start_loaded(dir: &Path, snap: config::Snapshot) -> Result<Server, StartError> {
        let access_log =
            AccessLog::start(&snap.log).map_err(|e| StartError::Io(format!("access log: {e}")))?;
        let listen_addr = snap.listen.addr;
        let admin_addr = snap.admin.addr;
        let listener = TcpListener::bind(listen_addr)
            .await
            .map_err(|error| StartError::Bind {
                what: "listen.addr",
                addr: listen_addr,
                error,
            })?;
        let admin_listener =
            TcpListener::bind(admin_addr)
                .await
                .map_err(|error| StartError::Bind {
                    what: "admin.addr",
                    addr: admin_addr,
                    error,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Io(e.to_string()))?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|e| StartError::Io(e.to_string()))?;

        let state = State::new(snap, access_log);
        state
            .metrics
            .config_reloads
            .with_label_values(&["ok"])
            .inc_by(0);
        state
            .metrics
            .config_reloads
            .with_label_values(&["error"])
            .inc_by(0);
        let (stop, stop_rx) = watch::channel(false);
        let (admin_stop, admin_stop_rx) = watch::channel(false);
        let graceful = Drain::new();
        let accept_task = tokio::spawn(listener::accept_loop(
            state.clone(),
            listener,
            graceful.clone(),
            stop_rx.clone(),
        ));
        tokio::spawn(admin::serve(state.clone(), admin_listener, admin_stop_rx));
        tokio::spawn(watch_upstreams(state.clone(), stop_rx));
        Ok(Server {
            state,
            addr,
            admin_addr,
            dir: dir.to_path_buf(),
            stop,
            admin_stop,
            accept_task,
            graceful,
        })
    }

    /// Re-read the config directory; keep the old snapshot on error.
    pub fn reload(&self) -> Result<reload::Outcome, ConfigError> {
        reload::apply(&self.state, &self.dir)
    }

    pub fn config_dir(&self) -> &Path {
        &self.dir
    }

    /// Stop accepting, close WebSockets with "going away", let in-flight
    /// requests and open event streams finish within `drain`; cut the
    /// streams still open then. Returns whether everything finished in time.
    pub async fn shutdown(self, drain: Duration) -> bool {
        use crate::tunnel::{DRAIN_DEADLINE, GOING_AWAY};
        self.state.start_draining();
        let _ = self.stop.send(true);
        let _ = self.accept_task.await;
        self.state.tunnels.close_tunnels(GOING_AWAY);
        // The accept loop has ended: no new connection joins the drain.
        self.graceful.start();
        let clean = tokio::time::timeout(drain, self.graceful.drained())
            .await
            .is_ok();
        if !clean {
            // Cut, so their clients see a truncation rather than an end,
            // and give the connections a moment to say so before exit.
            let cut = self.state.tunnels.cut_streams(DRAIN_DEADLINE);
            tracing::warn!(
                cut,
                open = self.graceful.open(),
                "drain deadline reached; cutting what is still open"
            );
            let _ = tokio::time::timeout(CUT_GRACE, self.graceful.drained()).await;
        }
        let _ = self.admin_stop.send(true);
        crate::observe::deny_log::flush();
        self.state.access_log.flush();
        clean
    }

    /// Serve until SIGTERM/SIGINT; SIGHUP reloads.
    pub async fn run_until_signalled(self) -> Result<(), String> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let watcher = reload::watch_dir(self.state.clone(), self.dir.clone());
        // Printed once everything is in place, file watching included.
        tracing::info!(
            addr = %self.addr,
            admin_addr = %self.admin_addr,
            members = self.state.snapshot().members.len(),
            "clawgate listening"
        );
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    let _ = reload::apply_off_runtime(self.state.clone(), self.dir.clone()).await;
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        drop(watcher);
        let drain = self.state.snapshot().timeouts.drain;
        self.state.start_draining();
        tracing::info!(?drain, "draining");
        let clean = self.shutdown(drain).await;
        tracing::info!(clean, "stopped");
        Ok(())
    }
}

/// Mark the proxy ready once every upstream has accepted a TCP connection
/// (or one request went through).
async fn watch_upstreams(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    loop {
        if state.upstream_seen() {
            return;
        }
        let snap = state.snapshot();
        let mut all = true;
        for up in &snap.upstreams {
            let addr = up.authority.as_str().to_string();
            let ok =
                tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                    .await
                    .is_ok_and(|r| r.is_ok());
            all &= ok;
        }
        if all {
            state.mark_upstream_seen();
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}
