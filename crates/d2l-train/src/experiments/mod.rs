//! The chapter 3–4 experiments (in progress)
