-- An audit entry on its own. KEYS[1..4]: the audit keys. ARGV: entry
audit(ARGV[1], 1)
return 1
