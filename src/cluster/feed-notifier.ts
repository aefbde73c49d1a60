/** The owner's notifier: wakes its own waiters and puts the shape in the next feed to workers. */
import { ShapeNotifier } from '../shapes/shape-notifier.js'

export class FeedNotifier extends ShapeNotifier {
  #onNotify: (shapeId: number) => void = () => {}

  /** Set once the feed exists, which needs the store the notifier's users write. */
  set onNotify(listener: (shapeId: number) => void) {
    this.#onNotify = listener
  }

  override notify(shapeId: number): void {
    super.notify(shapeId)
    this.#onNotify(shapeId)
  }
}
