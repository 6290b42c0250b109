//! Beeper and status LEDs: what each indication looks and sounds like (pure timelines), a player
//! task that drives them, and the GPIO outputs behind a small trait (GPIO character device
//! through linux-embedded-hal on boards, a recording sink in tests and the demo).
//!
//! The core decides *that* a code was read or a payment declined; this file only decides how that
//! is shown. A newer indication cuts the current one short, and every pattern ends with every
//! output off, so nothing stays lit or beeping after a preempted or finished pattern.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::DeviceError;
use super::board::{GpioConfig, GpioLine};

/// What the terminal wants to signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indication {
    /// A code was read: one short chirp, green flash.
    Read,
    /// Payment succeeded: two chirps, green held.
    Paid,
    /// Payment declined or failed: one long low beep, red held.
    Declined,
    /// Something needs a person (unknown outcome, device lost): three beeps, amber blinking.
    Attention,
    /// Everything off now.
    Off,
}

/// One output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    Beeper,
    Green,
    Red,
    Amber,
}

pub const OUTPUTS: [Output; 4] = [Output::Beeper, Output::Green, Output::Red, Output::Amber];

/// The state of all outputs for `ms` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub beeper: bool,
    pub green: bool,
    pub red: bool,
    pub amber: bool,
    pub ms: u32,
}

impl Step {
    const fn new(beeper: bool, green: bool, red: bool, amber: bool, ms: u32) -> Step {
        Step {
            beeper,
            green,
            red,
            amber,
            ms,
        }
    }

    pub fn get(&self, o: Output) -> bool {
        match o {
            Output::Beeper => self.beeper,
            Output::Green => self.green,
            Output::Red => self.red,
            Output::Amber => self.amber,
        }
    }
}

const OFF: Step = Step::new(false, false, false, false, 0);

/// The timeline of an indication. The last step is always all-off with `ms = 0`.
pub fn pattern(ind: Indication) -> Vec<Step> {
    let s = Step::new;
    let mut v = match ind {
        Indication::Read => vec![
            s(true, true, false, false, 60),
            s(false, true, false, false, 140),
        ],
        Indication::Paid => vec![
            s(true, true, false, false, 90),
            s(false, true, false, false, 70),
            s(true, true, false, false, 90),
            s(false, true, false, false, 1500),
        ],
        Indication::Declined => vec![
            s(true, false, true, false, 600),
            s(false, false, true, false, 1500),
        ],
        Indication::Attention => {
            let mut v = Vec::new();
            for _ in 0..3 {
                v.push(s(true, false, false, true, 80));
                v.push(s(false, false, false, true, 120));
            }
            for _ in 0..4 {
                v.push(s(false, false, false, false, 250));
                v.push(s(false, false, false, true, 250));
            }
            v
        }
        Indication::Off => Vec::new(),
    };
    v.push(OFF);
    v
}

/// Where output changes go.
pub trait GpioSink: Send {
    fn set(&mut self, output: Output, on: bool) -> Result<(), DeviceError>;
}

/// A sink that records every change with its time since start (tests, demo, `chip = "sim"`).
#[derive(Clone, Default)]
pub struct RecordingSink {
    pub log: Arc<Mutex<Vec<(Duration, Output, bool)>>>,
    start: Option<Instant>,
}

impl RecordingSink {
    pub fn new() -> RecordingSink {
        RecordingSink {
            log: Arc::default(),
            start: Some(Instant::now()),
        }
    }

    /// Current state of each output according to the log.
    pub fn state(&self) -> [bool; 4] {
        let mut st = [false; 4];
        if let Ok(log) = self.log.lock() {
            for (_, o, on) in log.iter() {
                if let Some(i) = OUTPUTS.iter().position(|x| x == o) {
                    st[i] = *on;
                }
            }
        }
        st
    }
}

impl GpioSink for RecordingSink {
    fn set(&mut self, output: Output, on: bool) -> Result<(), DeviceError> {
        let t = self.start.map_or(Duration::ZERO, |s| s.elapsed());
        if let Ok(mut log) = self.log.lock() {
            log.push((t, output, on));
        }
        Ok(())
    }
}

/// GPIO character-device outputs (linux-embedded-hal `CdevPin`). Lines are requested once and
/// held: releasing a line handle lets the line float.
pub struct CdevSink {
    pins: Vec<(Output, linux_embedded_hal::CdevPin, bool)>,
}

impl CdevSink {
    pub fn open(cfg: &GpioConfig) -> Result<CdevSink, DeviceError> {
        use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
        let gerr = |what: &str, e: &dyn std::fmt::Display| DeviceError::Gpio {
            what: what.to_owned(),
            message: e.to_string(),
        };
        let mut chip = Chip::new(&cfg.chip).map_err(|e| gerr(&cfg.chip, &e))?;
        let mut pins = Vec::new();
        let lines: [(Output, &Option<GpioLine>, &str); 4] = [
            (Output::Beeper, &cfg.beeper, "payterm-beeper"),
            (Output::Green, &cfg.led_green, "payterm-led-green"),
            (Output::Red, &cfg.led_red, "payterm-led-red"),
            (Output::Amber, &cfg.led_amber, "payterm-led-amber"),
        ];
        for (out, line, label) in lines {
            let Some(l) = line else { continue };
            let what = format!("{} line {}", cfg.chip, l.line);
            let handle = chip
                .get_line(l.line)
                .and_then(|line| {
                    line.request(LineRequestFlags::OUTPUT, u8::from(l.active_low), label)
                })
                .map_err(|e| gerr(&what, &e))?;
            let pin = linux_embedded_hal::CdevPin::new(handle).map_err(|e| gerr(&what, &e))?;
            pins.push((out, pin, l.active_low));
        }
        Ok(CdevSink { pins })
    }
}

impl GpioSink for CdevSink {
    fn set(&mut self, output: Output, on: bool) -> Result<(), DeviceError> {
        use embedded_hal::digital::OutputPin;
        for (o, pin, active_low) in self.pins.iter_mut() {
            if *o == output {
                // Requested without the kernel's ACTIVE_LOW flag, so invert here, once.
                let high = on != *active_low;
                let r = if high { pin.set_high() } else { pin.set_low() };
                r.map_err(|e| DeviceError::Gpio {
                    what: format!("{output:?}"),
                    message: format!("{e:?}"),
                })?;
            }
        }
        Ok(())
    }
}

/// Sends indications to the player task. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct IndicatorHandle {
    tx: mpsc::Sender<Indication>,
}

impl IndicatorHandle {
    /// Shows an indication, cutting short the one playing. If the player is busy receiving, the
    /// request is dropped rather than delaying the caller.
    pub fn show(&self, ind: Indication) {
        if self.tx.try_send(ind).is_err() {
            tracing::debug!(?ind, "indication dropped (player busy or stopped)");
        }
    }
}

/// Starts the indicator player for the board's `[gpio]` section: real GPIO lines, or a
/// recording sink for `chip = "sim"`. Returns the handle and the player task.
pub fn start_indicators(
    cfg: &GpioConfig,
) -> Result<(IndicatorHandle, tokio::task::JoinHandle<()>), DeviceError> {
    if cfg.chip == "sim" {
        Ok(spawn_player(RecordingSink::new()))
    } else {
        Ok(spawn_player(CdevSink::open(cfg)?))
    }
}

/// Runs a player over any sink.
pub fn spawn_player<S: GpioSink + 'static>(
    mut sink: S,
) -> (IndicatorHandle, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Indication>(4);
    let task = tokio::spawn(async move {
        let mut state = [false; 4];
        let apply = |sink: &mut S, step: &Step, state: &mut [bool; 4]| {
            for (i, o) in OUTPUTS.iter().enumerate() {
                let want = step.get(*o);
                if want != state[i] {
                    if let Err(e) = sink.set(*o, want) {
                        tracing::warn!(error = %e, "indicator output failed");
                    }
                    state[i] = want;
                }
            }
        };
        // Known state at start: everything off.
        for o in OUTPUTS {
            let _ = sink.set(o, false);
        }
        let mut next = rx.recv().await;
        'outer: while let Some(ind) = next.take() {
            for step in pattern(ind) {
                apply(&mut sink, &step, &mut state);
                if step.ms == 0 {
                    continue;
                }
                tokio::select! {
                    newer = rx.recv() => {
                        match newer {
                            Some(n) => { next = Some(n); continue 'outer; }
                            None => { apply(&mut sink, &OFF, &mut state); return; }
                        }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(u64::from(step.ms))) => {}
                }
            }
            next = rx.recv().await;
        }
        apply(&mut sink, &OFF, &mut state);
    });
    (IndicatorHandle { tx }, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Indication; 4] = [
        Indication::Read,
        Indication::Paid,
        Indication::Declined,
        Indication::Attention,
    ];

    fn beeps(p: &[Step]) -> usize {
        p.windows(2).filter(|w| !w[0].beeper && w[1].beeper).count() + usize::from(p[0].beeper)
    }

    #[test]
    fn patterns_are_distinct_and_end_dark() {
        for (i, a) in ALL.iter().enumerate() {
            let pa = pattern(*a);
            assert_eq!(*pa.last().unwrap(), OFF, "{a:?} must end all off");
            let total: u32 = pa.iter().map(|s| s.ms).sum();
            assert!(total <= 3000, "{a:?} lasts {total} ms");
            for b in &ALL[i + 1..] {
                assert_ne!(pa, pattern(*b), "{a:?} vs {b:?}");
            }
        }
        // Told apart by ear alone, too: 1, 2, 1 long, 3 beeps.
        assert_eq!(beeps(&pattern(Indication::Read)), 1);
        assert_eq!(beeps(&pattern(Indication::Paid)), 2);
        assert_eq!(beeps(&pattern(Indication::Attention)), 3);
        let declined = pattern(Indication::Declined);
        assert_eq!(beeps(&declined), 1);
        assert!(declined[0].ms >= 500, "declined beep is long");
        // And by colour.
        assert!(pattern(Indication::Paid).iter().any(|s| s.green));
        assert!(pattern(Indication::Paid).iter().all(|s| !s.red));
        assert!(declined.iter().any(|s| s.red) && declined.iter().all(|s| !s.green));
        assert!(pattern(Indication::Attention).iter().any(|s| s.amber));
        assert_eq!(pattern(Indication::Off), vec![OFF]);
    }

    #[tokio::test(start_paused = true)]
    async fn player_drives_the_sink_and_preempts() {
        let sink = RecordingSink::new();
        let log = sink.log.clone();
        let (h, _task) = spawn_player(sink.clone());
        h.show(Indication::Paid);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Mid-pattern: green on, the first beep over.
        assert_eq!(sink.state(), [false, true, false, false]);
        h.show(Indication::Declined);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            sink.state(),
            [true, false, true, false],
            "declined replaced paid at once"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(sink.state(), [false; 4], "all off after the pattern");
        let beeper_ons = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, o, on)| *o == Output::Beeper && *on)
            .count();
        assert_eq!(beeper_ons, 2, "one beep of paid, one of declined");
    }

    #[test]
    fn recording_sink_tracks_state() {
        let mut s = RecordingSink::new();
        s.set(Output::Red, true).unwrap();
        s.set(Output::Beeper, true).unwrap();
        s.set(Output::Beeper, false).unwrap();
        assert_eq!(s.state(), [false, false, true, false]);
    }
}
