/* One sentence saying what decided who gets a name, from an answer's threshold, threshold_source
 * and (when the calibration decides) false_match_rate and gallery_size: a `POST /recognize`
 * result, a socket result or `ready`. Shared by the webcam and try-it pages. */
const percent = (rate) => `${Number((rate * 100).toPrecision(3))}%`;

export function decisionText(answer) {
  const threshold = Number(answer.threshold).toFixed(3);
  if (answer.threshold_source === "request") {
    return `Override on: a fixed similarity of ${threshold} decides (threshold_source "request"), `
      + "not the organisation's false-match rate.";
  }
  if (answer.threshold_source === "calibrated") {
    const people = `${answer.gallery_size} ${answer.gallery_size === 1 ? "person" : "people"}`;
    return `Who gets a name: false-match rate ${percent(answer.false_match_rate)} with ${people} enrolled, `
      + `so a similarity of about ${threshold} is needed now.`;
  }
  return `This model has no calibration data: its fallback similarity of ${threshold} decides.`;
}
