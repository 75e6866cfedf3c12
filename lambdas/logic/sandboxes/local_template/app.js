// The app's behaviour goes here (plain browser JavaScript, no build step).
