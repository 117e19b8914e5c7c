//! The in-process stack behind `byollm demo` and the doctor's tests.

pub mod stack;
