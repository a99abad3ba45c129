//! `wasi:clocks@0.2.0-rc-2023-10-18` over the 0.2 host's clocks. The
//! monotonic clock's `subscribe(when, absolute)` is 0.2's
//! `subscribe-instant` or `subscribe-duration`; `timezone` (not served by
//! the 0.2 host) answers UTC, as its WIT asks of a host that exposes no
//! time zone.

use wasmtime::component::Resource;
use wasmtime_wasi::clocks::WasiClocksCtxView;

use super::latest::clocks as latest;
use super::snapshot::clocks::{monotonic_clock, timezone, wall_clock};
use monotonic_clock::Instant;
use timezone::TimezoneDisplay;
use wall_clock::Datetime;

type Pollable = super::latest::io::poll::Pollable;

impl From<latest::wall_clock::Datetime> for Datetime {
    fn from(time: latest::wall_clock::Datetime) -> Self {
        Self {
            seconds: time.seconds,
            nanoseconds: time.nanoseconds,
        }
    }
}

impl From<Datetime> for latest::wall_clock::Datetime {
    fn from(time: Datetime) -> Self {
        Self {
            seconds: time.seconds,
            nanoseconds: time.nanoseconds,
        }
    }
}

impl monotonic_clock::Host for WasiClocksCtxView<'_> {
    fn now(&mut self) -> wasmtime::Result<Instant> {
        latest::monotonic_clock::Host::now(self)
    }

    fn resolution(&mut self) -> wasmtime::Result<Instant> {
        latest::monotonic_clock::Host::resolution(self)
    }

    fn subscribe(&mut self, when: Instant, absolute: bool) -> wasmtime::Result<Resource<Pollable>> {
        if absolute {
            latest::monotonic_clock::Host::subscribe_instant(self, when)
        } else {
            latest::monotonic_clock::Host::subscribe_duration(self, when)
        }
    }
}

impl wall_clock::Host for WasiClocksCtxView<'_> {
    fn now(&mut self) -> wasmtime::Result<Datetime> {
        latest::wall_clock::Host::now(self).map(Datetime::from)
    }

    fn resolution(&mut self) -> wasmtime::Result<Datetime> {
        latest::wall_clock::Host::resolution(self).map(Datetime::from)
    }
}

impl timezone::Host for WasiClocksCtxView<'_> {
    fn display(&mut self, _when: Datetime) -> wasmtime::Result<TimezoneDisplay> {
        Ok(TimezoneDisplay {
            utc_offset: 0,
            name: "UTC".to_owned(),
            in_daylight_saving_time: false,
        })
    }

    fn utc_offset(&mut self, _when: Datetime) -> wasmtime::Result<i32> {
        Ok(0)
    }
}
