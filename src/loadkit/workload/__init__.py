"""What a simulated client does: test data, response checks, following import jobs."""
