//! Petition clocks: the working-day calendar, the time limits and their state.

mod calendar;

pub use calendar::{Calendar, Date, Weekday};
