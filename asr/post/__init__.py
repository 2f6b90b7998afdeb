"""After the model: times on the original timeline, speakers."""
