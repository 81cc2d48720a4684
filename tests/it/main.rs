//! Integration tests: they run the built `strata` binary the way a user does.
