//! `tail`: print stored records as they are acknowledged, optionally through
//! a jq filter run by jaq.
