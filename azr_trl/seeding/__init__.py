"""Seed tasks: the zero tasks and seed files, the bounded seed-generation loop, and the in-training seeding phase."""
