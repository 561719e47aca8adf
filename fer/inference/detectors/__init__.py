"""Face detectors, one module each (blazeface, haar, mtcnn), the Detector protocol they implement and their registry."""
