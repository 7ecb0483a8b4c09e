//! Spend rows, streams, alerts and database outages through the real server.
