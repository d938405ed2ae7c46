//! Owns the keeper process, `conductor __keeper` (docs/security.md,
//! "Containment"): one per apply or watch, started before any agent, in
//! its own process group and deaf to terminal signals. It starts every
//! process conductor runs (agents, `stop.command` checks, `[success]`
//! commands), so a start costs a fork of this small process, not of
//! conductor with a descriptor per running agent. It is their child
//! subreaper: whatever a run's processes start, and however they detach
//! (`setsid`, a double fork, `set -m`, Node's `detached`), stays below it.
//! It knows a run's processes by the run's cgroup where one can be made,
//! else by their process group, the run's tag in their environment, and
//! descent. A run is reported ended only once its first process has exited
//! and every other process of it is gone; when conductor goes (its socket
//! closes, however it died), the keeper kills everything below it and
//! exits.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use rustix::event::{Timespec, epoll};
use rustix::process::{Pid, Signal, WaitOptions};

use super::protocol::{self, Containment, RUN_TAG, Reply, Request, SpawnRequest};
use super::relay::Relay;
use crate::process::cgroup::{Base, RunCgroup};
use crate::process::tree;
use crate::secrets::StreamRedactor;

/// Event tokens: the requests socket, the SIGCHLD pipe, then relays.
const REQUESTS: u64 = 0;
const CHILDREN: u64 = 1;

/// How often a run being swept is looked at again when no child's exit
/// wakes the keeper first.
const SWEEP_POLL: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 10_000_000,
};

/// How many emptied run cgroups the keeper keeps for the next runs: making
/// and removing one costs more than the rest of a start's work in the keeper
/// (docs/performance.md).
const SPARE_CGROUPS: usize = 64;

/// One run, from its start until nothing of it is left.
#[derive(Debug)]
struct Run {
    pid: i32,
    /// `RUN_TAG=<tag>`, as its processes' environment holds it.
    tag: String,
    cgroup: Option<RunCgroup>,
    /// The first process's exit code, once it has exited: the rest of the
    /// run is then being killed.
    code: Option<i32>,
    /// Its stdout and stderr on their way to their files, by token.
    relays: Vec<(u64, Relay)>,
}

#[derive(Debug)]
struct Keeper {
    me: i32,
    base: Option<Base>,
    /// The run cgroup the keeper is in, where the next run will be born.
    parked: Option<RunCgroup>,
    /// The cgroup of a started run that the keeper could not move out of
    /// (the run was then given none): never to be killed while it is in it.
    stranded: Option<RunCgroup>,
    /// How many run cgroups were made, which names the next one.
    made: u64,
    /// Run cgroups emptied by runs that ended, for the next runs.
    spare: Vec<RunCgroup>,
    runs: HashMap<u64, Run>,
    /// Run ids by their first process, until it is reaped.
    leaders: HashMap<i32, u64>,
    /// Run ids by their relays' tokens.
    relays: HashMap<u64, u64>,
    next_token: u64,
    epoll: OwnedFd,
}

/// The keeper's main: serves requests on stdin until conductor is gone.
pub(crate) fn run(containment: Containment) -> u8 {
    // Ctrl-C reaches the whole foreground group; the keeper must outlive
    // conductor's graceful stop, so it ignores what a terminal sends.
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGQUIT,
    ] {
        let _ = signal_hook::flag::register(sig, std::sync::Arc::default());
    }
    let Ok(stdin) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return 1;
    };
    let requests = UnixStream::from(stdin);
    let Ok((woken, wake)) = UnixStream::pair() else {
        return 1;
    };
    if woken.set_nonblocking(true).is_err()
        || wake.set_nonblocking(true).is_err()
        || signal_hook::low_level::pipe::register(signal_hook::consts::SIGCHLD, wake).is_err()
    {
        return 1;
    }
    let me = rustix::process::getpid();
    let subreaper = rustix::process::set_child_subreaper(Some(me));
    let created = match containment {
        Containment::Subreaper => {
            crate::process::cgroup::clear_dead_keepers();
            None
        }
        Containment::Auto | Containment::Cgroup => Some(Base::create()),
    };
    let (base, containment) = match (containment, created) {
        (Containment::Subreaper, _) | (_, None) => (None, "subreaper (as asked)".to_string()),
        (_, Some(Ok((base, parked)))) => {
            let what = format!("cgroup ({})", base.path().display());
            (Some((base, parked)), what)
        }
        (Containment::Cgroup, Some(Err(e))) => {
            reply(&Reply::Unavailable {
                why: format!("cgroup containment is not available: {e}"),
            });
            return 1;
        }
        (Containment::Auto, Some(Err(e))) => (None, format!("subreaper (no cgroup: {e})")),
    };
    if let Err(e) = subreaper {
        reply(&Reply::Unavailable {
            why: format!("cannot become the agents' child subreaper: {e}"),
        });
        return 1;
    }
    let Ok(poller) = epoll::create(epoll::CreateFlags::CLOEXEC) else {
        return 1;
    };
    for (fd, token) in [(requests.as_fd(), REQUESTS), (woken.as_fd(), CHILDREN)] {
        if epoll::add(
            &poller,
            fd,
            epoll::EventData::new_u64(token),
            epoll::EventFlags::IN,
        )
        .is_err()
        {
            return 1;
        }
    }
    reply(&Reply::Ready { containment });
    let (base, parked) = base.unzip();
    let mut keeper = Keeper {
        me: me.as_raw_nonzero().get(),
        base,
        parked,
        stranded: None,
        made: 0,
        spare: Vec::new(),
        runs: HashMap::new(),
        leaders: HashMap::new(),
        relays: HashMap::new(),
        next_token: CHILDREN + 1,
        epoll: poller,
    };
    keeper.serve(&requests, &woken);
    keeper.shutdown(&woken);
    0
}

fn reply(reply: &Reply) {
    // Conductor gone: nobody to tell, and the end of stdin says so too.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(protocol::line(reply).as_bytes());
    let _ = out.flush();
}

impl Keeper {
    fn serve(&mut self, requests: &UnixStream, woken: &UnixStream) {
        let mut events = Vec::with_capacity(64);
        loop {
            let sweeping = self.runs.values().any(|r| r.code.is_some());
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                sweeping.then_some(&SWEEP_POLL),
            ) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return,
            }
            let mut request = false;
            for event in &events {
                match event.data.u64() {
                    REQUESTS => request = true,
                    CHILDREN => drain(woken),
                    token => self.pump(token),
                }
            }
            self.reap();
            if request {
                match protocol::receive(requests) {
                    Ok(Some((request, fds))) => self.handle(request, fds),
                    Ok(None) | Err(_) => return,
                }
            }
            self.sweep();
        }
    }

    /// Moves a relay's output along; one whose pipe ended is done.
    fn pump(&mut self, token: u64) {
        let Some(run) = self.relays.get(&token).and_then(|id| self.runs.get_mut(id)) else {
            return;
        };
        let Some(at) = run.relays.iter().position(|(t, _)| *t == token) else {
            return;
        };
        if run.relays[at].1.pump() {
            let (_, relay) = run.relays.swap_remove(at);
            let _ = epoll::delete(&self.epoll, relay.pipe());
            relay.finish();
            self.relays.remove(&token);
        }
    }

    fn handle(&mut self, request: Request, fds: Vec<OwnedFd>) {
        match request {
            Request::Spawn(spawn) => {
                let answer = self.spawn(&spawn, fds);
                reply(&answer);
                if let Reply::Started { id, .. } = answer {
                    self.step_out(id);
                }
            }
            Request::Term { id } => self.signal_run(id, Signal::TERM),
            Request::Kill { id } => self.signal_run(id, Signal::KILL),
        }
    }

    fn spawn(&mut self, spawn: &SpawnRequest, fds: Vec<OwnedFd>) -> Reply {
        let SpawnRequest {
            id,
            ref program,
            ref args,
            ref cwd,
            ref env,
            ref redact,
        } = *spawn;
        let failed = |error: String, os_error: Option<i32>| Reply::Failed {
            id,
            error,
            os_error,
        };
        let Ok::<[OwnedFd; 3], _>([stdin, stdout, stderr]) = fds.try_into() else {
            return failed("a spawn came without its three streams".into(), None);
        };
        // Output that could hold a secret goes through the keeper.
        let (stdout, stderr, relays) = match relayed(redact, stdout, stderr) {
            Ok(r) => r,
            Err(e) => {
                return failed(
                    format!("cannot make the run's pipes: {e}"),
                    e.raw_os_error(),
                );
            }
        };
        // Born into its cgroup: the keeper waits in it (see `step_out`).
        if self.base.is_some()
            && self.parked.is_none()
            && let Err(e) = self.park()
        {
            return failed(
                format!("cannot enter the run's cgroup: {e}"),
                e.raw_os_error(),
            );
        }
        let cgroup = self.parked.take();
        let tag = format!("{}-{id}", self.me);
        let started = std::process::Command::new(program)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(RUN_TAG, &tag)
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .spawn();
        match started {
            Ok(child) => {
                let pid = i32::try_from(child.id()).unwrap_or(0);
                // Dropping a std `Child` neither waits nor kills: the keeper
                // reaps every child itself.
                drop(child);
                self.leaders.insert(pid, id);
                let mut tokens = Vec::new();
                for relay in relays {
                    let token = self.next_token;
                    self.next_token += 1;
                    if epoll::add(
                        &self.epoll,
                        relay.pipe(),
                        epoll::EventData::new_u64(token),
                        epoll::EventFlags::IN,
                    )
                    .is_ok()
                    {
                        self.relays.insert(token, id);
                    }
                    tokens.push((token, relay));
                }
                self.runs.insert(
                    id,
                    Run {
                        pid,
                        tag: format!("{RUN_TAG}={tag}"),
                        cgroup,
                        code: None,
                        relays: tokens,
                    },
                );
                Reply::Started { id, pid }
            }
            Err(e) => {
                // Nothing was born in it: the keeper waits there still.
                self.parked = cgroup;
                failed(e.to_string(), e.raw_os_error())
            }
        }
    }

    /// Moves the keeper into a run cgroup for the next run: a spare one, or
    /// a new one.
    fn park(&mut self) -> std::io::Result<()> {
        let Some(base) = &self.base else {
            return Ok(());
        };
        let next = match self.spare.pop() {
            Some(c) => c,
            None => {
                self.made += 1;
                base.run(self.made)?
            }
        };
        if let Err(e) = next.enter() {
            let _ = next.remove();
            return Err(e);
        }
        self.parked = Some(next);
        self.stranded = None;
        Ok(())
    }

    /// After run `id` started in the cgroup the keeper waited in, and after
    /// conductor was told: the keeper moves on to the next run's cgroup, or
    /// home. Where it can do neither it is still in the run's cgroup, which
    /// it must then never kill: that run is swept like one without a cgroup.
    fn step_out(&mut self, id: u64) {
        if self.base.is_none() || self.park().is_ok() {
            return;
        }
        if self.base.as_ref().is_some_and(|b| b.leave().is_ok()) {
            self.stranded = None;
            return;
        }
        if let Some(run) = self.runs.get_mut(&id) {
            self.stranded = run.cgroup.take();
        }
    }

    /// Every child that ended is reaped (the keeper adopts orphans, so
    /// they are its children too); a run's first process ending starts
    /// the sweep of the rest of the run.
    fn reap(&mut self) {
        while let Ok(Some((pid, status))) = rustix::process::wait(WaitOptions::NOHANG) {
            let pid = pid.as_raw_nonzero().get();
            if let Some(id) = self.leaders.remove(&pid)
                && let Some(run) = self.runs.get_mut(&id)
            {
                let code = status
                    .exit_status()
                    .or_else(|| status.terminating_signal().map(|s| 128 + s))
                    .unwrap_or(-1);
                run.code = Some(code);
            }
        }
    }

    /// The processes of run `id` now, its first one included while it runs.
    fn members(&self, run: &Run) -> Vec<i32> {
        if let Some(c) = &run.cgroup {
            return c.procs();
        }
        let mut roots: Vec<i32> = self
            .strays()
            .into_iter()
            .filter(|&p| {
                tree::stat(p).is_some_and(|s| s.pgrp == run.pid) || tree::has_tag(p, &run.tag)
            })
            .collect();
        if run.code.is_none() {
            roots.push(run.pid);
        }
        tree::subtree(roots)
    }

    /// The keeper's children that are no running run's first process:
    /// orphans it adopted.
    fn strays(&self) -> Vec<i32> {
        tree::children(self.me)
            .into_iter()
            .filter(|p| !self.leaders.contains_key(p))
            .collect()
    }

    fn signal_run(&mut self, id: u64, signal: Signal) {
        let Some(run) = self.runs.get(&id) else {
            return;
        };
        if signal == Signal::KILL
            && let Some(c) = &run.cgroup
        {
            let _ = c.kill();
        }
        for pid in self.members(run) {
            kill(pid, signal);
        }
    }

    /// Kills what is left of runs whose first process exited; a run with
    /// nothing left is reported ended and forgotten.
    fn sweep(&mut self) {
        let ended: Vec<u64> = self
            .runs
            .iter()
            .filter(|(_, r)| r.code.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            let Some(run) = self.runs.get(&id) else {
                continue;
            };
            let left = self.members(run);
            if !left.is_empty() {
                if let Some(c) = &run.cgroup {
                    let _ = c.kill();
                }
                for pid in left {
                    kill(pid, Signal::KILL);
                }
                continue;
            }
            // Nothing is left in it: it serves the next run, or is removed.
            if let Some(c) = &run.cgroup
                && self.spare.len() >= SPARE_CGROUPS
                && c.remove().is_err()
            {
                // Processes still leaving it: looked at again soon.
                continue;
            }
            let code = run.code.unwrap_or(-1);
            if let Some(mut run) = self.runs.remove(&id) {
                if let Some(c) = run.cgroup.take()
                    && self.spare.len() < SPARE_CGROUPS
                {
                    self.spare.push(c);
                }
                // Its writers are gone: what is left in the pipes is the end.
                for (token, relay) in run.relays {
                    let _ = epoll::delete(&self.epoll, relay.pipe());
                    relay.finish();
                    self.relays.remove(&token);
                }
            }
            reply(&Reply::Exited { id, code });
        }
        // An orphan whose run cannot be told (it left the group and cleared
        // its environment) is killed once no run is left that could own it.
        if self.base.is_none() && self.runs.is_empty() {
            for pid in tree::subtree(self.strays()) {
                kill(pid, Signal::KILL);
            }
        }
    }

    /// Conductor is gone: everything below the keeper is killed, and the
    /// keeper waits until it is gone before it exits.
    fn shutdown(&mut self, woken: &UnixStream) {
        let ids: Vec<u64> = self.runs.keys().copied().collect();
        for id in ids {
            self.signal_run(id, Signal::KILL);
        }
        loop {
            self.reap();
            let left = tree::subtree(tree::children(self.me));
            if left.is_empty() {
                break;
            }
            for pid in left {
                kill(pid, Signal::KILL);
            }
            let mut fds = [rustix::event::PollFd::new(
                woken,
                rustix::event::PollFlags::IN,
            )];
            let _ = rustix::event::poll(&mut fds, Some(&SWEEP_POLL));
            drain(woken);
        }
        if let Some(base) = &self.base {
            base.close(self.parked.take().or_else(|| self.stranded.take()));
        }
    }
}

fn kill(pid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Empties the SIGCHLD pipe (it only says "look").
fn drain(woken: &UnixStream) {
    let mut buf = [0u8; 64];
    while matches!((&*woken).read(&mut buf), Ok(n) if n > 0) {}
}

/// The descriptors a run writes its stdout and stderr to, and the relays
/// that carry them on when there are secrets to redact.
fn relayed(
    redact: &[(String, String)],
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> std::io::Result<(OwnedFd, OwnedFd, Vec<Relay>)> {
    let (Some(out), Some(err)) = (StreamRedactor::new(redact), StreamRedactor::new(redact)) else {
        return Ok((stdout, stderr, Vec::new()));
    };
    let pipe = || -> std::io::Result<(OwnedFd, OwnedFd)> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        rustix::io::ioctl_fionbio(&read, true)?;
        Ok((read, write))
    };
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    Ok((
        out_write,
        err_write,
        vec![
            Relay::new(out_read, stdout, out),
            Relay::new(err_read, stderr, err),
        ],
    ))
}
