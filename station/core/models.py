"""No models: present so post_migrate fires for this app (station.core.grants)."""
