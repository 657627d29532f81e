-- PostgreSQL only (column collations); nothing to do on SQLite.
SELECT 1;
