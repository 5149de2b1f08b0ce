//! Strategic merge patch (work in progress).
