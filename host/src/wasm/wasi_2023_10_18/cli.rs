//! `wasi:cli@0.2.0-rc-2023-10-18`: environment, exit, stdio and terminals,
//! the same functions as 0.2's on the same context (so a guest's stdout and
//! stderr reach the guest log as a 0.2 guest's do).

use wasmtime::component::Resource;
use wasmtime_wasi::cli::WasiCliCtxView;

use super::latest::cli as latest;
use super::snapshot::cli::{
    environment, exit, stderr, stdin, stdout, terminal_input, terminal_output, terminal_stderr,
    terminal_stdin, terminal_stdout,
};
use terminal_input::TerminalInput;
use terminal_output::TerminalOutput;

type InputStream = super::latest::io::streams::InputStream;
type OutputStream = super::latest::io::streams::OutputStream;

impl environment::Host for WasiCliCtxView<'_> {
    fn get_environment(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        latest::environment::Host::get_environment(self)
    }

    fn get_arguments(&mut self) -> wasmtime::Result<Vec<String>> {
        latest::environment::Host::get_arguments(self)
    }

    fn initial_cwd(&mut self) -> wasmtime::Result<Option<String>> {
        latest::environment::Host::initial_cwd(self)
    }
}

impl exit::Host for WasiCliCtxView<'_> {
    fn exit(&mut self, status: Result<(), ()>) -> wasmtime::Result<()> {
        latest::exit::Host::exit(self, status)
    }
}

impl stdin::Host for WasiCliCtxView<'_> {
    fn get_stdin(&mut self) -> wasmtime::Result<Resource<InputStream>> {
        latest::stdin::Host::get_stdin(self)
    }
}

impl stdout::Host for WasiCliCtxView<'_> {
    fn get_stdout(&mut self) -> wasmtime::Result<Resource<OutputStream>> {
        latest::stdout::Host::get_stdout(self)
    }
}

impl stderr::Host for WasiCliCtxView<'_> {
    fn get_stderr(&mut self) -> wasmtime::Result<Resource<OutputStream>> {
        latest::stderr::Host::get_stderr(self)
    }
}

impl terminal_input::Host for WasiCliCtxView<'_> {}

impl terminal_input::HostTerminalInput for WasiCliCtxView<'_> {
    fn drop(&mut self, terminal: Resource<TerminalInput>) -> wasmtime::Result<()> {
        latest::terminal_input::HostTerminalInput::drop(self, terminal)
    }
}

impl terminal_output::Host for WasiCliCtxView<'_> {}

impl terminal_output::HostTerminalOutput for WasiCliCtxView<'_> {
    fn drop(&mut self, terminal: Resource<TerminalOutput>) -> wasmtime::Result<()> {
        latest::terminal_output::HostTerminalOutput::drop(self, terminal)
    }
}

impl terminal_stdin::Host for WasiCliCtxView<'_> {
    fn get_terminal_stdin(&mut self) -> wasmtime::Result<Option<Resource<TerminalInput>>> {
        latest::terminal_stdin::Host::get_terminal_stdin(self)
    }
}

impl terminal_stdout::Host for WasiCliCtxView<'_> {
    fn get_terminal_stdout(&mut self) -> wasmtime::Result<Option<Resource<TerminalOutput>>> {
        latest::terminal_stdout::Host::get_terminal_stdout(self)
    }
}

impl terminal_stderr::Host for WasiCliCtxView<'_> {
    fn get_terminal_stderr(&mut self) -> wasmtime::Result<Option<Resource<TerminalOutput>>> {
        latest::terminal_stderr::Host::get_terminal_stderr(self)
    }
}
