//! The task API (`containerd.task.v2.Task`) over the one [`Task`] this
//! shim runs, and the reaper that turns its process's end into an exit:
//! waiters woken, `/tasks/exit` published at once.
//!
//! What containerd and its CRI plugin call is implemented: create, start,
//! state, wait, kill, delete, pids, connect, shutdown, stats, close_io
//! (nothing to close: stdin is never read). Everything else answers
//! "not implemented".

#![forbid(unsafe_code)]

use std::sync::{mpsc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::api::{
    self, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest,
    DeleteResponse, KillRequest, PidsRequest, PidsResponse, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse, WaitRequest,
    WaitResponse,
};
use containerd_shim_protos::events::task::{TaskCreate, TaskDelete, TaskExit, TaskIO, TaskStart};
use containerd_shim_protos::shim::shim_ttrpc::Task as TaskApi;
use containerd_shim_protos::ttrpc::{self, Code, TtrpcContext};
use containerd_shim_protos::types::task::Status as ApiStatus;

use super::app::Node;
use super::events::{timestamp, Event, Publisher};
use super::log;
use super::task::{exit_status, Exit, Status, Task};

fn status(code: Code, message: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, message))
}

fn not_implemented(what: &str) -> ttrpc::Error {
    status(
        Code::UNIMPLEMENTED,
        format!("{what} is not implemented by the wasmhost shim"),
    )
}

/// Where the one task is.
enum Slot {
    /// Not created yet.
    Empty,
    /// Created and not deleted.
    Live(Box<Task>),
    /// Deleted: the shim may go.
    Deleted,
}

/// The service.
pub struct Service {
    id: String,
    namespace: String,
    events: Publisher,
    slot: Mutex<Slot>,
    changed: Condvar,
    shutdown: Mutex<mpsc::Sender<()>>,
}

impl Service {
    /// The service for task `id`; `shutdown` is told when the shim may
    /// exit.
    pub fn new(
        id: String,
        namespace: String,
        events: Publisher,
        shutdown: mpsc::Sender<()>,
    ) -> Self {
        Service {
            id,
            namespace,
            events,
            slot: Mutex::new(Slot::Empty),
            changed: Condvar::new(),
            shutdown: Mutex::new(shutdown),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_id(&self, id: &str, exec_id: &str) -> ttrpc::Result<()> {
        if !exec_id.is_empty() {
            return Err(not_implemented("exec"));
        }
        if id != self.id {
            return Err(status(
                Code::NOT_FOUND,
                format!("task {id} not found: this shim runs {}", self.id),
            ));
        }
        Ok(())
    }

    fn not_found(&self) -> ttrpc::Error {
        status(Code::NOT_FOUND, format!("task {} not found", self.id))
    }

    /// Reaps children for ever (on a thread of its own): the task's
    /// process's end is its exit; orphans that the shim inherited as
    /// subreaper are just reaped.
    pub fn reap(&self) {
        loop {
            match nix::sys::wait::waitpid(None, None) {
                Ok(waited) => {
                    if let Some((pid, code)) = exit_status(waited) {
                        self.exited(pid, code);
                    }
                }
                Err(nix::errno::Errno::ECHILD) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => {}
            }
        }
    }

    fn exited(&self, pid: i32, code: u32) {
        let mut slot = self.lock();
        let Slot::Live(task) = &mut *slot else { return };
        if task.pid != pid || task.exit.is_some() {
            return;
        }
        let exit = Exit {
            status: code,
            at: SystemTime::now(),
        };
        task.exit = Some(exit);
        log::debug(&format!("task {} exited with {code}", task.id));
        // A process that ends before Start (preloaded, its app did not
        // load) is reported once Start or Delete comes, so containerd sees
        // start before exit as always.
        if task.started() {
            self.publish_exit(task);
        }
        self.changed.notify_all();
    }

    /// Queues the exit event of `task` (which has exited), once. Queued
    /// under the lock: after the start event, before any delete.
    fn publish_exit(&self, task: &mut Task) {
        let Some(exit) = task.exit else { return };
        if std::mem::replace(&mut task.exit_published, true) {
            return;
        }
        let mut event = TaskExit::new();
        event.container_id = task.id.clone();
        event.id = task.id.clone();
        event.pid = task.pid as u32;
        event.exit_status = exit.status;
        event.exited_at = Some(timestamp(exit.at)).into();
        self.events.publish(Event::Exit(event));
    }

    fn live<'a>(&self, slot: &'a mut Slot) -> ttrpc::Result<&'a mut Task> {
        match slot {
            Slot::Live(task) => Ok(task),
            _ => Err(self.not_found()),
        }
    }
}

impl TaskApi for Service {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: CreateTaskRequest,
    ) -> ttrpc::Result<CreateTaskResponse> {
        self.check_id(&req.id, "")?;
        let mut slot = self.lock();
        if !matches!(*slot, Slot::Empty) {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("task {} already exists", req.id),
            ));
        }
        let node =
            Node::from_env().map_err(|e| status(Code::FAILED_PRECONDITION, format!("{e:#}")))?;
        let task = Task::create(&req, &self.namespace, &node).map_err(|e| {
            log::line(&format!("create {}: {e:#}", req.id));
            status(Code::FAILED_PRECONDITION, format!("{e:#}"))
        })?;
        let pid = task.pid as u32;
        let mut event = TaskCreate::new();
        event.container_id = req.id.clone();
        event.bundle = req.bundle.clone();
        event.rootfs = req.rootfs.clone();
        let mut io = TaskIO::new();
        io.stdin = req.stdin.clone();
        io.stdout = req.stdout.clone();
        io.stderr = req.stderr.clone();
        io.terminal = req.terminal;
        event.io = Some(io).into();
        event.checkpoint = req.checkpoint.clone();
        event.pid = pid;
        self.events.publish(Event::Create(event));
        log::debug(&format!("created {} (pid {pid})", req.id));
        *slot = Slot::Live(Box::new(task));
        let mut response = CreateTaskResponse::new();
        response.pid = pid;
        Ok(response)
    }

    fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        self.check_id(&req.id, &req.exec_id)?;
        let mut slot = self.lock();
        let task = self.live(&mut slot)?;
        task.start()
            .map_err(|e| status(Code::FAILED_PRECONDITION, format!("{e:#}")))?;
        let mut event = TaskStart::new();
        event.container_id = task.id.clone();
        event.pid = task.pid as u32;
        self.events.publish(Event::Start(event));
        self.publish_exit(task);
        let mut response = StartResponse::new();
        response.pid = task.pid as u32;
        Ok(response)
    }

    fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        self.check_id(&req.id, &req.exec_id)?;
        let mut slot = self.lock();
        let task = self.live(&mut slot)?;
        let mut response = StateResponse::new();
        response.id = task.id.clone();
        response.bundle = task.bundle.display().to_string();
        response.pid = task.pid as u32;
        response.status = match task.status() {
            Status::Created => ApiStatus::CREATED,
            Status::Running => ApiStatus::RUNNING,
            Status::Stopped => ApiStatus::STOPPED,
        }
        .into();
        let [stdin, stdout, stderr] = task.stdio.clone();
        response.stdin = stdin;
        response.stdout = stdout;
        response.stderr = stderr;
        if let Some(exit) = task.exit {
            response.exit_status = exit.status;
            response.exited_at = Some(timestamp(exit.at)).into();
        }
        Ok(response)
    }

    fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        self.check_id(&req.id, &req.exec_id)?;
        let mut slot = self.lock();
        loop {
            let exit = self.live(&mut slot)?.exit;
            if let Some(exit) = exit {
                let mut response = WaitResponse::new();
                response.exit_status = exit.status;
                response.exited_at = Some(timestamp(exit.at)).into();
                return Ok(response);
            }
            slot = self.changed.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<api::Empty> {
        self.check_id(&req.id, &req.exec_id)?;
        let mut slot = self.lock();
        let task = self.live(&mut slot)?;
        if task.exit.is_some() {
            return Err(status(Code::NOT_FOUND, "process already finished"));
        }
        log::debug(&format!("kill {} with {}", task.id, req.signal));
        task.kill(req.signal as i32, req.all)
            .map_err(|e| status(Code::INTERNAL, format!("{e:#}")))?;
        Ok(api::Empty::new())
    }

    fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        self.check_id(&req.id, &req.exec_id)?;
        let mut slot = self.lock();
        let task = self.live(&mut slot)?;
        match task.status() {
            Status::Running => {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("task {} is still running: kill it first", task.id),
                ))
            }
            Status::Created => {
                // Never started: it goes now.
                let _ = task.kill(libc::SIGKILL, false);
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while self.live(&mut slot)?.exit.is_none() {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(status(Code::DEADLINE_EXCEEDED, "the task did not exit"));
                    }
                    slot = self
                        .changed
                        .wait_timeout(slot, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            Status::Stopped => {}
        }
        let task = self.live(&mut slot)?;
        self.publish_exit(task);
        task.clean_up();
        let exit = task.exit.unwrap_or(Exit {
            status: 0,
            at: SystemTime::now(),
        });
        let mut event = TaskDelete::new();
        event.container_id = task.id.clone();
        event.id = task.id.clone();
        event.pid = task.pid as u32;
        event.exit_status = exit.status;
        event.exited_at = Some(timestamp(exit.at)).into();
        self.events.publish(Event::Delete(event));
        let mut response = DeleteResponse::new();
        response.pid = task.pid as u32;
        response.exit_status = exit.status;
        response.exited_at = Some(timestamp(exit.at)).into();
        *slot = Slot::Deleted;
        self.changed.notify_all();
        Ok(response)
    }

    fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        self.check_id(&req.id, "")?;
        let mut slot = self.lock();
        let task = self.live(&mut slot)?;
        let mut response = PidsResponse::new();
        response.processes = task
            .pids()
            .into_iter()
            .map(|pid| {
                let mut info = api::ProcessInfo::new();
                info.pid = pid as u32;
                info
            })
            .collect();
        Ok(response)
    }

    fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        self.check_id(&req.id, "")?;
        let mut slot = self.lock();
        let task = self.live(&mut slot)?;
        let metrics = task
            .metrics()
            .map_err(|e| status(Code::INTERNAL, format!("{e:#}")))?;
        let mut response = StatsResponse::new();
        response.stats = Some(metrics).into();
        Ok(response)
    }

    fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        self.check_id(&req.id, "")?;
        let slot = self.lock();
        let mut response = ConnectResponse::new();
        response.shim_pid = std::process::id();
        if let Slot::Live(task) = &*slot {
            response.task_pid = task.pid as u32;
        }
        Ok(response)
    }

    fn shutdown(&self, _ctx: &TtrpcContext, req: ShutdownRequest) -> ttrpc::Result<api::Empty> {
        let slot = self.lock();
        if matches!(*slot, Slot::Live(_)) && !req.now {
            // A task that is not deleted keeps its shim.
            return Ok(api::Empty::new());
        }
        let _ = self
            .shutdown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(());
        Ok(api::Empty::new())
    }

    fn close_io(
        &self,
        _ctx: &TtrpcContext,
        _req: api::CloseIORequest,
    ) -> ttrpc::Result<api::Empty> {
        Ok(api::Empty::new())
    }

    fn pause(&self, _ctx: &TtrpcContext, _req: api::PauseRequest) -> ttrpc::Result<api::Empty> {
        Err(not_implemented("pause"))
    }

    fn resume(&self, _ctx: &TtrpcContext, _req: api::ResumeRequest) -> ttrpc::Result<api::Empty> {
        Err(not_implemented("resume"))
    }

    fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        _req: api::CheckpointTaskRequest,
    ) -> ttrpc::Result<api::Empty> {
        Err(not_implemented("checkpoint"))
    }

    fn exec(
        &self,
        _ctx: &TtrpcContext,
        _req: api::ExecProcessRequest,
    ) -> ttrpc::Result<api::Empty> {
        Err(not_implemented("exec"))
    }

    fn resize_pty(
        &self,
        _ctx: &TtrpcContext,
        _req: api::ResizePtyRequest,
    ) -> ttrpc::Result<api::Empty> {
        Err(not_implemented("resize_pty"))
    }

    fn update(
        &self,
        _ctx: &TtrpcContext,
        _req: api::UpdateTaskRequest,
    ) -> ttrpc::Result<api::Empty> {
        Err(not_implemented("update"))
    }
}
