"""Speech: Twilio audio to transcripts with Vosk, and speech-model management."""
