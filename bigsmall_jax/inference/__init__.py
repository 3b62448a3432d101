"""Running a model on a video: face crop, preprocessing, the forward pass, rates and the report."""
